//! The events socket over real WebSockets: chat order and history, the
//! viewer count, every moderation action, the chat rules, resume without
//! duplicates or gaps, stream state changes, access, and the bad-frame policy.

use std::time::Duration;

use app::protocol::close::CloseReason;
use app::protocol::events::{
    ChatMessage, ClientMessage, ClientRole, Envelope, ModerationAction, ServerEvent,
};
use app::protocol::StreamState;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{create_stream, mint};
use crate::support::TestApp;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the events socket, as a browser on this site would (same Origin)
/// when there is a session.
pub(crate) async fn open(
    app: &TestApp,
    id: &str,
    session: Option<&str>,
    origin: Option<&str>,
) -> Ws {
    let mut req = format!("ws://{}/api/v1/streams/{id}/events", app.addr)
        .into_client_request()
        .expect("request");
    if let Some(s) = session {
        req.headers_mut().insert(
            "cookie",
            format!("onair_session={s}").parse().expect("cookie"),
        );
    }
    let same = format!("http://{}", app.addr);
    let origin = origin.unwrap_or(&same);
    req.headers_mut()
        .insert("origin", origin.parse().expect("origin"));
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects")
        .0
}

pub(crate) async fn send(ws: &mut Ws, m: &ClientMessage) {
    ws.send(Message::Text(
        serde_json::to_string(m).expect("json").into(),
    ))
    .await
    .expect("send");
}

pub(crate) fn hello(
    role: ClientRole,
    viewer_id: Option<&str>,
    last_id: Option<u64>,
) -> ClientMessage {
    ClientMessage::Hello {
        version: 1,
        role,
        viewer_id: viewer_id.map(str::to_string),
        token: None,
        last_id,
    }
}

/// The next event, or the close frame.
pub(crate) async fn next(ws: &mut Ws) -> Result<Envelope, (u16, CloseReason)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the server answers in time")
        {
            Some(Ok(Message::Text(t))) => {
                return Ok(serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")))
            }
            Some(Ok(Message::Close(Some(f)))) => {
                let reason = serde_json::from_str(&f.reason).expect("JSON close reason");
                return Err((u16::from(f.code), reason));
            }
            Some(Ok(Message::Close(None))) | None => {
                return Err((
                    1005,
                    CloseReason {
                        code: String::new(),
                        message: String::new(),
                    },
                ))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error: {e}"),
        }
    }
}

/// Events until one matches; panics on a close.
async fn until(ws: &mut Ws, mut pred: impl FnMut(&ServerEvent) -> bool) -> Envelope {
    loop {
        let e = next(ws).await.unwrap_or_else(|c| panic!("closed: {c:?}"));
        if pred(&e.event) {
            return e;
        }
    }
}

pub(crate) async fn welcome(ws: &mut Ws) -> ServerEvent {
    until(ws, |e| matches!(e, ServerEvent::Welcome { .. }))
        .await
        .event
}

async fn chat(ws: &mut Ws) -> (u64, ChatMessage) {
    let e = until(ws, |e| matches!(e, ServerEvent::Chat { .. })).await;
    match e.event {
        ServerEvent::Chat { message } => (e.id.expect("broadcasts carry ids"), message),
        _ => unreachable!(),
    }
}

async fn error_code(ws: &mut Ws) -> String {
    match until(ws, |e| matches!(e, ServerEvent::Error { .. }))
        .await
        .event
    {
        ServerEvent::Error { code, .. } => code,
        _ => unreachable!(),
    }
}

fn say(text: &str) -> ClientMessage {
    ClientMessage::Chat { text: text.into() }
}

/// A stream, its owner's session, and signed-in viewers `ann` and `bob`.
struct Room {
    id: String,
    owner: String,
    ann: String,
    bob: String,
}

async fn room(app: &TestApp, visibility: &str) -> Room {
    let (_, owner) = mint(app, "owner", "broadcaster").await;
    let (_, ann) = mint(app, "ann", "viewer").await;
    let (_, bob) = mint(app, "bob", "viewer").await;
    let stream = create_stream(app, &owner, "Chat room", visibility).await;
    Room {
        id: stream["id"].as_str().expect("id").to_string(),
        owner,
        ann,
        bob,
    }
}

#[tokio::test]
async fn chat_arrives_in_order_for_everyone_with_history_and_viewer_count() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    let mut studio = open(&app, &r.id, Some(&r.owner), None).await;
    send(&mut studio, &hello(ClientRole::Studio, None, None)).await;
    let ServerEvent::Welcome {
        moderator,
        can_chat,
        username,
        state,
        ..
    } = welcome(&mut studio).await
    else {
        unreachable!()
    };
    assert!(moderator && can_chat);
    assert_eq!(username.as_deref(), Some("owner"));
    assert_eq!(state, StreamState::Idle);

    let mut ann = open(&app, &r.id, Some(&r.ann), None).await;
    send(
        &mut ann,
        &hello(ClientRole::Viewer, Some("ann-browser-1"), None),
    )
    .await;
    let ServerEvent::Welcome {
        moderator,
        can_chat,
        ..
    } = welcome(&mut ann).await
    else {
        unreachable!()
    };
    assert!(!moderator && can_chat);
    // An anonymous viewer with two tabs (one viewer id) reads but cannot post.
    let mut anon = open(&app, &r.id, None, None).await;
    send(
        &mut anon,
        &hello(ClientRole::Viewer, Some("anon-browser-1"), None),
    )
    .await;
    let ServerEvent::Welcome {
        can_chat, username, ..
    } = welcome(&mut anon).await
    else {
        unreachable!()
    };
    assert!(!can_chat && username.is_none());
    let mut anon_tab2 = open(&app, &r.id, None, None).await;
    send(
        &mut anon_tab2,
        &hello(ClientRole::Viewer, Some("anon-browser-1"), None),
    )
    .await;
    welcome(&mut anon_tab2).await;

    // Viewers: ann and the anonymous browser; the studio does not count.
    let count = until(&mut studio, |e| {
        matches!(e, ServerEvent::Viewers { count: 2 })
    })
    .await;
    assert!(count.id.is_some());
    assert_eq!(app.state.rooms.viewer_count(&r.id), 2);

    for n in 1..=3 {
        send(&mut ann, &say(&format!("message {n} 👋"))).await;
    }
    for ws in [&mut studio, &mut ann, &mut anon, &mut anon_tab2] {
        let mut last = 0;
        for n in 1..=3 {
            let (id, m) = chat(ws).await;
            assert!(id > last, "ids increase");
            last = id;
            assert_eq!(m.text, format!("message {n} 👋"));
            assert_eq!(m.author.username, "ann");
            assert!(!m.author.moderator);
        }
    }
    send(&mut anon, &say("hello?")).await;
    assert_eq!(error_code(&mut anon).await, "sign_in_required");

    // A new viewer gets the history, oldest first.
    let mut late = open(&app, &r.id, Some(&r.bob), None).await;
    send(&mut late, &hello(ClientRole::Viewer, None, None)).await;
    let ServerEvent::Welcome {
        history, viewers, ..
    } = welcome(&mut late).await
    else {
        unreachable!()
    };
    let texts: Vec<_> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["message 1 👋", "message 2 👋", "message 3 👋"]);
    assert_eq!(viewers, 3);
    until(&mut studio, |e| {
        matches!(e, ServerEvent::Viewers { count: 3 })
    })
    .await;

    // Closing one of two tabs keeps the count; closing both lowers it.
    anon_tab2.close(None).await.expect("close");
    drop(anon_tab2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.state.rooms.viewer_count(&r.id), 3);
    anon.close(None).await.expect("close");
    until(&mut studio, |e| {
        matches!(e, ServerEvent::Viewers { count: 2 })
    })
    .await;

    // Stream state changes reach the room.
    app.state.ingest.set_state(&r.id, StreamState::Live).await;
    until(&mut ann, |e| {
        matches!(
            e,
            ServerEvent::State {
                state: StreamState::Live
            }
        )
    })
    .await;
    app.state.ingest.set_state(&r.id, StreamState::Ended).await;
    until(&mut late, |e| {
        matches!(
            e,
            ServerEvent::State {
                state: StreamState::Ended
            }
        )
    })
    .await;
    // The ended stream's chat is read-only.
    send(&mut late, &say("too late")).await;
    assert_eq!(error_code(&mut late).await, "chat_closed");
}

#[tokio::test]
async fn every_moderation_action_takes_effect_for_everyone() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    let mut owner = open(&app, &r.id, Some(&r.owner), None).await;
    send(&mut owner, &hello(ClientRole::Studio, None, None)).await;
    welcome(&mut owner).await;
    let mut ann = open(&app, &r.id, Some(&r.ann), None).await;
    send(&mut ann, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut ann).await;
    let mut bob = open(&app, &r.id, Some(&r.bob), None).await;
    send(&mut bob, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut bob).await;

    send(&mut ann, &say("rude words")).await;
    let (_, m) = chat(&mut bob).await;
    // Bob is no moderator.
    send(
        &mut bob,
        &ClientMessage::Delete {
            message_id: m.id.clone(),
        },
    )
    .await;
    assert_eq!(error_code(&mut bob).await, "forbidden");
    send(
        &mut bob,
        &ClientMessage::Ban {
            username: "ann".into(),
        },
    )
    .await;
    assert_eq!(error_code(&mut bob).await, "forbidden");

    // The owner deletes it: gone for everyone, and from the history.
    send(
        &mut owner,
        &ClientMessage::Delete {
            message_id: m.id.clone(),
        },
    )
    .await;
    for ws in [&mut ann, &mut bob, &mut owner] {
        let e = until(ws, |e| matches!(e, ServerEvent::ChatDeleted { .. })).await;
        assert_eq!(
            e.event,
            ServerEvent::ChatDeleted {
                message_id: m.id.clone()
            }
        );
        let e = until(ws, |e| matches!(e, ServerEvent::Moderation { .. })).await;
        assert!(
            matches!(e.event, ServerEvent::Moderation { action: ModerationAction::Delete, ref username, ref by, .. } if username == "ann" && by == "owner")
        );
    }
    let history = app
        .state
        .db
        .chat_history(&r.id, 100)
        .await
        .expect("history");
    assert!(history.is_empty(), "{history:?}");

    // A timeout: ann cannot post; the others hear about it.
    send(
        &mut owner,
        &ClientMessage::Timeout {
            username: "ann".into(),
            minutes: 10,
        },
    )
    .await;
    let e = until(&mut bob, |e| matches!(e, ServerEvent::Moderation { .. })).await;
    let ServerEvent::Moderation {
        action, until_ms, ..
    } = e.event
    else {
        unreachable!()
    };
    assert_eq!(action, ModerationAction::Timeout);
    let until_ms = until_ms.expect("until");
    let now = onair_server::realtime::now_ms();
    assert!((now + 9 * 60_000..=now + 10 * 60_000 + 1000).contains(&until_ms));
    send(&mut ann, &say("let me speak")).await;
    assert_eq!(error_code(&mut ann).await, "timed_out");
    send(
        &mut owner,
        &ClientMessage::Timeout {
            username: "ann".into(),
            minutes: 0,
        },
    )
    .await;
    assert_eq!(error_code(&mut owner).await, "invalid_message");

    // A ban, then an unban.
    send(
        &mut owner,
        &ClientMessage::Ban {
            username: "ann".into(),
        },
    )
    .await;
    until(&mut ann, |e| {
        matches!(
            e,
            ServerEvent::Moderation {
                action: ModerationAction::Ban,
                ..
            }
        )
    })
    .await;
    send(&mut ann, &say("still here")).await;
    assert_eq!(error_code(&mut ann).await, "banned");
    // The ban holds for a new connection too.
    let mut ann2 = open(&app, &r.id, Some(&r.ann), None).await;
    send(&mut ann2, &hello(ClientRole::Viewer, None, None)).await;
    let ServerEvent::Welcome { can_chat, .. } = welcome(&mut ann2).await else {
        unreachable!()
    };
    assert!(!can_chat);
    send(
        &mut owner,
        &ClientMessage::Unban {
            username: "ann".into(),
        },
    )
    .await;
    until(&mut bob, |e| {
        matches!(
            e,
            ServerEvent::Moderation {
                action: ModerationAction::Unban,
                ..
            }
        )
    })
    .await;
    send(&mut ann, &say("thanks")).await;
    assert_eq!(chat(&mut bob).await.1.text, "thanks");

    // The owner names bob a moderator over the API; bob can then delete.
    let res = app
        .http
        .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"moderators": ["bob"], "slow_mode_secs": 0}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    // Bob's own socket hears that he moderates now.
    until(&mut bob, |e| {
        matches!(
            e,
            ServerEvent::You {
                moderator: true,
                can_chat: true
            }
        )
    })
    .await;
    let (_, thanks) = chat(&mut owner).await;
    send(
        &mut bob,
        &ClientMessage::Delete {
            message_id: thanks.id.clone(),
        },
    )
    .await;
    until(&mut ann, |e| matches!(e, ServerEvent::ChatDeleted { .. })).await;
    // Moderators cannot be banned by moderators.
    send(
        &mut bob,
        &ClientMessage::Ban {
            username: "owner".into(),
        },
    )
    .await;
    assert_eq!(error_code(&mut bob).await, "forbidden");

    // The log says who did what to whom.
    let log: serde_json::Value = app
        .http
        .get(app.url(&format!("/api/v1/streams/{}/chat/log", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["by"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut actions: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["ban", "delete", "delete", "settings", "timeout", "unban"],
        "{entries:?}"
    );
    assert!(entries.contains(&("bob".into(), "delete".into(), "ann".into())));
    assert!(entries.contains(&("owner".into(), "ban".into(), "ann".into())));
    // Only the owner (or an admin) reads it.
    let res = app
        .http
        .get(app.url(&format!("/api/v1/streams/{}/chat/log", r.id)))
        .header("cookie", format!("onair_session={}", r.ann))
        .send()
        .await
        .expect("log");
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_chat_rules_refuse_with_a_reason() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    let mut ann = open(&app, &r.id, Some(&r.ann), None).await;
    send(&mut ann, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut ann).await;

    // Length.
    send(&mut ann, &say(&"x".repeat(501))).await;
    assert_eq!(error_code(&mut ann).await, "invalid_message");
    send(&mut ann, &say("   ")).await;
    assert_eq!(error_code(&mut ann).await, "invalid_message");
    // Bursts of five, then refused with how long to wait.
    for n in 0..5 {
        send(&mut ann, &say(&format!("burst {n}"))).await;
        chat(&mut ann).await;
    }
    send(&mut ann, &say("one too many")).await;
    let e = until(&mut ann, |e| matches!(e, ServerEvent::Error { .. })).await;
    let ServerEvent::Error { code, message } = e.event else {
        unreachable!()
    };
    assert_eq!(code, "rate_limited");
    assert!(message.contains("wait"), "{message}");

    // The owner turns on slow mode, blocks links and bans a word.
    let res = app
        .http
        .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"slow_mode_secs": 30, "block_links": true, "banned_words": ["Darn"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["banned_words"], json!(["darn"]));
    let s = until(&mut ann, |e| matches!(e, ServerEvent::Settings(_))).await;
    let ServerEvent::Settings(s) = s.event else {
        unreachable!()
    };
    assert_eq!(s.slow_mode_secs, 30);
    assert!(s.block_links);
    assert!(s.banned_words.is_empty(), "the list stays with the owner");

    let mut bob = open(&app, &r.id, Some(&r.bob), None).await;
    send(&mut bob, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut bob).await;
    send(&mut bob, &say("well DARN")).await;
    assert_eq!(error_code(&mut bob).await, "banned_word");
    send(&mut bob, &say("see example.com")).await;
    assert_eq!(error_code(&mut bob).await, "links_blocked");
    send(&mut bob, &say("first")).await;
    assert_eq!(chat(&mut bob).await.1.text, "first");
    send(&mut bob, &say("second")).await;
    assert_eq!(error_code(&mut bob).await, "slow_mode");

    // Bad settings are refused with the field.
    let res = app
        .http
        .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"moderators": ["nobody-here"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 422);
    // Others may not change them.
    let res = app
        .http
        .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
        .header("cookie", format!("onair_session={}", r.bob))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"slow_mode_secs": 0}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn a_reconnect_resumes_without_duplicates_or_gaps() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    let mut ann = open(&app, &r.id, Some(&r.ann), None).await;
    send(&mut ann, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut ann).await;
    let mut reader = open(&app, &r.id, None, None).await;
    send(
        &mut reader,
        &hello(ClientRole::Viewer, Some("reader-browser"), None),
    )
    .await;
    welcome(&mut reader).await;

    send(&mut ann, &say("before")).await;
    let (seen, _) = chat(&mut reader).await;
    // Drain whatever else was broadcast up to now (viewer counts).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut last = seen;
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(200), reader.next()).await
    {
        let e: Envelope = serde_json::from_str(&t).expect("event");
        last = e.id.unwrap_or(last);
    }
    drop(reader);
    for n in 1..=3 {
        send(&mut ann, &say(&format!("missed {n}"))).await;
        chat(&mut ann).await;
    }

    let mut back = open(&app, &r.id, None, None).await;
    send(
        &mut back,
        &hello(ClientRole::Viewer, Some("reader-browser"), Some(last)),
    )
    .await;
    let ServerEvent::Welcome { history, .. } = welcome(&mut back).await else {
        unreachable!()
    };
    assert!(
        history.is_empty(),
        "a resume gets the missed events, not the history"
    );
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let e = next(&mut back).await.expect("event");
        let id = e.id.expect("replayed events keep their ids");
        assert!(
            id > last,
            "nothing already seen comes again ({id} <= {last})"
        );
        ids.push(id);
        if let ServerEvent::Chat { message } = e.event {
            texts.push(message.text);
        }
    }
    assert_eq!(texts, ["missed 1", "missed 2", "missed 3"]);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no gaps: {ids:?}");
    send(&mut ann, &say("after")).await;
    let (id, m) = chat(&mut back).await;
    assert_eq!(m.text, "after");
    assert!(id > *ids.last().expect("ids"));

    // A resume point the room no longer has: a resync with the history.
    let mut stale = open(&app, &r.id, None, None).await;
    send(&mut stale, &hello(ClientRole::Viewer, None, Some(5))).await;
    welcome(&mut stale).await;
    let e = until(&mut stale, |e| matches!(e, ServerEvent::Resync { .. })).await;
    let ServerEvent::Resync { history, .. } = e.event else {
        unreachable!()
    };
    assert_eq!(history.len(), 5);
    assert_eq!(history.last().map(|m| m.text.as_str()), Some("after"));
}

#[tokio::test]
async fn access_and_the_bad_frame_policy() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "private").await;

    // No such stream; no hello; private without a token.
    let mut ws = open(&app, "nosuchstream", None, None).await;
    send(&mut ws, &hello(ClientRole::Viewer, None, None)).await;
    assert_eq!(next(&mut ws).await.expect_err("closed").0, 4004);
    let mut ws = open(&app, &r.id, None, None).await;
    send(&mut ws, &say("hi")).await;
    assert_eq!(next(&mut ws).await.expect_err("closed").0, 4000);
    let mut ws = open(&app, &r.id, Some(&r.ann), None).await;
    send(&mut ws, &hello(ClientRole::Viewer, None, None)).await;
    let (code, reason) = next(&mut ws).await.expect_err("closed");
    assert_eq!((code, reason.code.as_str()), (4003, "forbidden"));
    // With the watch link's token, it opens; the owner needs none.
    let (token, _) = app.state.accounts.playback.issue(
        &r.id,
        Duration::from_secs(600),
        onair_server::auth::playback::unix_now(),
    );
    let mut viewer = open(&app, &r.id, None, None).await;
    send(
        &mut viewer,
        &ClientMessage::Hello {
            version: 1,
            role: ClientRole::Viewer,
            viewer_id: None,
            token: Some(token),
            last_id: None,
        },
    )
    .await;
    welcome(&mut viewer).await;
    let mut owner = open(&app, &r.id, Some(&r.owner), None).await;
    send(&mut owner, &hello(ClientRole::Studio, None, None)).await;
    welcome(&mut owner).await;
    // A session sent from another site counts for nothing.
    let mut hijack = open(&app, &r.id, Some(&r.owner), Some("http://evil.example")).await;
    send(&mut hijack, &hello(ClientRole::Studio, None, None)).await;
    assert_eq!(next(&mut hijack).await.expect_err("closed").0, 4003);

    // Malformed frames get an error and the connection stays up.
    viewer
        .send(Message::Text("{not json".into()))
        .await
        .expect("send");
    assert_eq!(error_code(&mut viewer).await, "bad_message");
    viewer
        .send(Message::Text(r#"{"type":"launch_rockets"}"#.into()))
        .await
        .expect("send");
    assert_eq!(error_code(&mut viewer).await, "bad_message");
    viewer
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(error_code(&mut viewer).await, "bad_message");
    let big = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(5000));
    viewer.send(Message::Text(big.into())).await.expect("send");
    assert_eq!(error_code(&mut viewer).await, "too_large");
    send(&mut viewer, &ClientMessage::Ping).await;
    until(&mut viewer, |e| matches!(e, ServerEvent::Pong)).await;
    // A frame far over the limit closes the connection with 4013.
    let huge = "y".repeat(70_000);
    let _ = viewer.send(Message::Text(huge.into())).await;
    assert_eq!(next(&mut viewer).await.expect_err("closed").0, 4013);
    // Ten bad frames in a row close it with 4002.
    for _ in 0..10 {
        owner
            .send(Message::Text("nope".into()))
            .await
            .expect("send");
    }
    let closed = loop {
        match next(&mut owner).await {
            Ok(_) => continue,
            Err(c) => break c,
        }
    };
    assert_eq!(closed.0, 4002);
}

#[tokio::test]
async fn the_connection_limit_refuses_with_4503() {
    let app = TestApp::start(|c| c.realtime.max_connections = 2).await;
    let r = room(&app, "public").await;
    let mut a = open(&app, &r.id, None, None).await;
    send(&mut a, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut a).await;
    let mut b = open(&app, &r.id, None, None).await;
    send(&mut b, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut b).await;
    // The limit counts sockets that said hello: the third is refused then.
    let mut c = open(&app, &r.id, None, None).await;
    send(&mut c, &hello(ClientRole::Viewer, None, None)).await;
    let (code, reason) = next(&mut c).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4503, "full"));
    // The owner's studio does not count against it.
    let mut studio = open(&app, &r.id, Some(&r.owner), None).await;
    send(&mut studio, &hello(ClientRole::Studio, None, None)).await;
    welcome(&mut studio).await;
    // A place frees up when someone leaves.
    a.close(None).await.expect("close");
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut d = open(&app, &r.id, None, None).await;
    send(&mut d, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut d).await;
}

#[tokio::test]
async fn a_slow_client_is_skipped_ahead_or_dropped_and_never_slows_the_room() {
    let app = TestApp::start(|c| c.realtime.client_queue = 16).await;
    let r = room(&app, "public").await;
    let mut fast = open(&app, &r.id, None, None).await;
    send(
        &mut fast,
        &hello(ClientRole::Viewer, Some("fast-browser"), None),
    )
    .await;
    welcome(&mut fast).await;
    // This one never reads while the room is busy.
    let mut slow = open(&app, &r.id, None, None).await;
    send(
        &mut slow,
        &hello(ClientRole::Viewer, Some("slow-browser"), None),
    )
    .await;
    welcome(&mut slow).await;
    let room = app.state.rooms.get(&r.id).expect("the room is open");

    // 20,000 events of about 600 bytes: far more than socket buffers hold.
    const EVENTS: usize = 20_000;
    let text = "z".repeat(500);
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let mut last = 0u64;
        while got < EVENTS {
            let e = next(&mut fast).await.expect("the fast client stays");
            if let ServerEvent::Chat { .. } = e.event {
                let id = e.id.expect("id");
                assert!(id > last);
                last = id;
                got += 1;
            }
        }
        got
    });
    for n in 0..EVENTS {
        room.broadcast(ServerEvent::Chat {
            message: ChatMessage {
                id: format!("m{n}"),
                author: app::protocol::events::ChatAuthor {
                    username: "load".into(),
                    moderator: false,
                },
                text: text.clone(),
                at_ms: 0,
            },
        });
        // A busy room, but one a client that reads can keep up with.
        if n % 4 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the fast client gets everything in time")
        .expect("reader");
    assert_eq!(got, EVENTS, "the fast client got every event, in order");

    // The slow one was skipped ahead (a resync) or dropped (4029), never
    // handed a gap silently.
    let mut last = 0u64;
    let outcome = loop {
        match next(&mut slow).await {
            Ok(Envelope {
                event: ServerEvent::Resync { .. },
                ..
            }) => break "resync",
            Ok(Envelope { id: Some(id), .. }) => {
                assert!(last == 0 || id == last + 1, "a silent gap: {last} → {id}");
                last = id;
            }
            Ok(_) => {}
            Err((4029, _)) => break "dropped",
            Err(c) => panic!("unexpected close {c:?}"),
        }
    };
    assert!(["resync", "dropped"].contains(&outcome));
}

#[tokio::test]
async fn a_request_that_is_not_a_websocket_upgrade_gets_a_json_error() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    let url = format!("http://{}/api/v1/streams/{}/events", app.addr, r.id);
    let plain = app.http.get(&url).send().await.expect("get");
    assert_eq!(plain.status(), 400);
    let body: serde_json::Value = plain.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_websocket", "{body}");
    let old = app
        .http
        .get(&url)
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("get");
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
    // A real client (tungstenite checks Sec-WebSocket-Accept) still opens it.
    let mut ws = open(&app, &r.id, None, None).await;
    send(&mut ws, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut ws).await;
}

/// Events until the socket closes; its close code and reason.
async fn closed(ws: &mut Ws) -> (u16, CloseReason) {
    loop {
        if let Err(c) = next(ws).await {
            return c;
        }
    }
}

#[tokio::test]
async fn a_stream_turning_private_drops_who_may_not_watch_it() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    // An anonymous viewer, a signed-in one, one with a watch link's token,
    // a moderator and the owner's studio, all in the public room.
    let mut anon = open(&app, &r.id, None, None).await;
    send(
        &mut anon,
        &hello(ClientRole::Viewer, Some("anon-viewer-1"), None),
    )
    .await;
    welcome(&mut anon).await;
    let mut ann = open(&app, &r.id, Some(&r.ann), None).await;
    send(&mut ann, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut ann).await;
    let (token, _) = app.state.accounts.playback.issue(
        &r.id,
        Duration::from_secs(600),
        onair_server::auth::playback::unix_now(),
    );
    let mut linked = open(&app, &r.id, None, None).await;
    send(
        &mut linked,
        &ClientMessage::Hello {
            version: 1,
            role: ClientRole::Viewer,
            viewer_id: None,
            token: Some(token),
            last_id: None,
        },
    )
    .await;
    welcome(&mut linked).await;
    let put = app
        .http
        .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"moderators": ["bob"], "slow_mode_secs": 0}))
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let mut bob = open(&app, &r.id, Some(&r.bob), None).await;
    send(&mut bob, &hello(ClientRole::Viewer, None, None)).await;
    let ServerEvent::Welcome { moderator, .. } = welcome(&mut bob).await else {
        unreachable!()
    };
    assert!(moderator);
    let mut owner = open(&app, &r.id, Some(&r.owner), None).await;
    send(&mut owner, &hello(ClientRole::Studio, None, None)).await;
    welcome(&mut owner).await;

    let res = app
        .http
        .patch(app.url(&format!("/api/v1/streams/{}", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"visibility": "private"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    // Those without a token or moderator rights are dropped with 4003.
    for ws in [&mut anon, &mut ann] {
        let (code, reason) = closed(ws).await;
        assert_eq!((code, reason.code.as_str()), (4003, "forbidden"));
    }
    // The others stay: each still gets what the room says.
    send(&mut owner, &say("still here?")).await;
    for ws in [&mut linked, &mut bob, &mut owner] {
        assert_eq!(chat(ws).await.1.text, "still here?");
    }

    // The owner drops bob as a moderator: his socket loses the moderator
    // view at once, and with it the stream, which is private now.
    let put = app
        .http
        .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
        .header("cookie", format!("onair_session={}", r.owner))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"moderators": [], "slow_mode_secs": 0}))
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let (code, _) = closed(&mut bob).await;
    assert_eq!(code, 4003);
    send(&mut owner, &say("bye")).await;
    assert_eq!(chat(&mut linked).await.1.text, "bye");
}

#[tokio::test]
async fn a_dropped_moderator_loses_the_moderator_view_at_once() {
    let app = TestApp::start(|_| {}).await;
    let r = room(&app, "public").await;
    let set_moderators = |names: Vec<&'static str>| {
        app.http
            .put(app.url(&format!("/api/v1/streams/{}/chat", r.id)))
            .header("cookie", format!("onair_session={}", r.owner))
            .header("origin", format!("http://{}", app.addr))
            .json(&json!({"moderators": names, "slow_mode_secs": 0}))
            .send()
    };
    assert_eq!(
        set_moderators(vec!["bob"]).await.expect("put").status(),
        200
    );
    let mut bob = open(&app, &r.id, Some(&r.bob), None).await;
    send(&mut bob, &hello(ClientRole::Viewer, None, None)).await;
    let ServerEvent::Welcome { moderator, .. } = welcome(&mut bob).await else {
        unreachable!()
    };
    assert!(moderator);
    // At once: the owner drops him right after he joined.
    assert_eq!(set_moderators(vec![]).await.expect("put").status(), 200);
    until(&mut bob, |e| {
        matches!(
            e,
            ServerEvent::You {
                moderator: false,
                ..
            }
        )
    })
    .await;
    // And the server holds him to it.
    send(
        &mut bob,
        &ClientMessage::Ban {
            username: "ann".into(),
        },
    )
    .await;
    assert_eq!(error_code(&mut bob).await, "forbidden");
}

/// A publisher whose connection drops: the room hears that the broadcaster
/// is away (a late joiner too, in its welcome), and that they are back when
/// the publisher resumes; an end then says `ended` without a stale `away`.
/// (The browser side is `end2end/tests/reconnect.test.mjs`.)
#[tokio::test]
async fn viewers_hear_when_the_broadcaster_drops_and_comes_back() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let (id, token) = app.new_stream().await;
    let mut viewer = open(&app, &id, None, None).await;
    send(&mut viewer, &hello(ClientRole::Viewer, Some("v-1"), None)).await;
    let ServerEvent::Welcome {
        broadcaster_away, ..
    } = welcome(&mut viewer).await
    else {
        unreachable!()
    };
    assert!(!broadcaster_away);

    let (publisher, _) = crate::ingest::attach(&app, &id, &token, None).await;
    until(&mut viewer, |e| {
        matches!(
            e,
            ServerEvent::State {
                state: StreamState::Live
            }
        )
    })
    .await;
    // The socket goes without `end`, as a lost network would.
    drop(publisher);
    until(&mut viewer, |e| {
        matches!(e, ServerEvent::Broadcaster { away: true })
    })
    .await;
    let mut late = open(&app, &id, None, None).await;
    send(&mut late, &hello(ClientRole::Viewer, Some("v-2"), None)).await;
    let ServerEvent::Welcome {
        state,
        broadcaster_away,
        ..
    } = welcome(&mut late).await
    else {
        unreachable!()
    };
    assert_eq!(state, StreamState::Live);
    assert!(broadcaster_away, "a late joiner is told too");

    // Back within the grace: the same session, and the room hears it.
    let (_publisher, _) = crate::ingest::attach(&app, &id, &token, Some(0)).await;
    for ws in [&mut viewer, &mut late] {
        until(ws, |e| {
            matches!(e, ServerEvent::Broadcaster { away: false })
        })
        .await;
    }
    // The end (as the pipeline reports it) says `ended`, with no `away` after it.
    app.state.ingest.set_state(&id, StreamState::Ended).await;
    let ended = until(&mut viewer, |e| {
        matches!(
            e,
            ServerEvent::State { .. } | ServerEvent::Broadcaster { .. }
        )
    })
    .await;
    assert_eq!(
        ended.event,
        ServerEvent::State {
            state: StreamState::Ended
        }
    );
}
