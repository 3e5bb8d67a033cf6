//! Connection limits over real sockets on 127.0.0.1: silent and slow HTTP
//! clients are closed, one address cannot hold more than its share of
//! connections, sockets that never say hello are closed and never lock the
//! owner's studio out, and the sockets' same-origin rule counts the scheme.
//!
//! Every client here is 127.0.0.1, so the caps are tested with small
//! configured values.

use std::time::Duration;

use app::protocol::events::{ClientRole, ServerEvent};
use app::protocol::ingest::{ClientMessage as IngestMessage, ServerMessage};
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{create_stream, mint};
use crate::events::{hello, next as next_event, open, send, welcome};
use crate::support::TestApp;

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

/// Reads until the server closes the connection (EOF or reset); returns
/// what it sent. Panics if it is still open after a minute.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(60), tcp.read(&mut buf))
            .await
            .expect("the server closes the connection");
        match read {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: onair.test\r\n\r\n";

/// One `GET /healthz` on a kept-alive connection; returns the status line.
async fn healthz_on(tcp: &mut TcpStream) -> String {
    tcp.write_all(HEALTHZ).await.expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer is small: read until its JSON body is in.
    while !got.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn silent_and_slow_connections_are_closed_after_the_header_timeout() {
    let app = TestApp::start(|c| c.connections.header_timeout = secs(1)).await;

    // Connects and never sends a byte.
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    assert!(until_closed(&mut silent).await.is_empty());

    // Slowloris: a head that never ends, one header line every 200 ms.
    let tcp = TcpStream::connect(app.addr).await.expect("connect");
    let (mut read, mut write) = tcp.into_split();
    let trickle = tokio::spawn(async move {
        write
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: onair.test\r\n")
            .await
            .expect("start");
        for n in 0..300 {
            if write
                .write_all(format!("X-Slow-{n}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        300
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut answer))
        .await
        .expect("the server closes the slow connection");
    assert!(
        closed.is_err() || answer.is_empty(),
        "no answer to a head that never ended: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let lines_sent = trickle.await.expect("trickle");
    assert!(
        lines_sent < 300,
        "the connection was closed while the head went on"
    );

    // Meanwhile (and after) the server answers everyone else.
    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::start(|c| {
        c.connections.header_timeout = secs(600);
        c.connections.idle_timeout = secs(1);
    })
    .await;
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    assert_eq!(healthz_on(&mut tcp).await, "HTTP/1.1 200 OK");
    // Kept alive for the next request...
    assert_eq!(healthz_on(&mut tcp).await, "HTTP/1.1 200 OK");
    // ...then closed once idle, although the header timeout is far off.
    assert!(until_closed(&mut tcp).await.is_empty());
}

#[tokio::test]
async fn one_address_gets_its_cap_of_connections_and_a_place_back_when_one_closes() {
    let app = TestApp::start(|c| c.connections.http_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        assert_eq!(healthz_on(&mut tcp).await, "HTTP/1.1 200 OK");
        held.push(tcp);
    }
    // The fourth is told why and closed, never served.
    let mut fourth = TcpStream::connect(app.addr).await.expect("connect");
    let _ = fourth.write_all(HEALTHZ).await;
    let answer = String::from_utf8_lossy(&until_closed(&mut fourth).await).into_owned();
    assert!(!answer.contains(" 200 "), "{answer}");
    assert!(
        answer.is_empty()
            || (answer.starts_with("HTTP/1.1 503") && answer.contains("too_many_connections")),
        "{answer}"
    );
    // The held connections still work.
    assert_eq!(healthz_on(&mut held[0]).await, "HTTP/1.1 200 OK");
    // One closes: its place comes back (once the server has seen it go).
    drop(held.pop());
    let mut served = false;
    for _ in 0..200 {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        let _ = tcp.write_all(HEALTHZ).await;
        let answer = until_closed_or_answered(&mut tcp).await;
        if answer.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a place came back");
}

/// The status line of an answer, or "" if the connection was closed first.
async fn until_closed_or_answered(tcp: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .expect("answered or closed in time")
    {
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// A stream and its owner's session.
async fn owned_stream(app: &TestApp) -> (String, String) {
    let (_, owner) = mint(app, "owner", "broadcaster").await;
    let stream = create_stream(app, &owner, "Limits", "public").await;
    (stream["id"].as_str().expect("id").to_string(), owner)
}

#[tokio::test]
async fn silent_events_sockets_never_lock_out_the_owner_and_are_closed_after_the_hello_deadline() {
    let app = TestApp::start(|c| {
        c.realtime.max_connections = 100;
        c.connections.events_per_ip = 0;
        c.connections.hello_timeout = Duration::from_secs(5);
    })
    .await;
    let (id, owner) = owned_stream(&app).await;
    // More sockets than the node's limit, none of which ever says hello.
    let mut silent = Vec::new();
    for _ in 0..120 {
        silent.push(open(&app, &id, None, None).await);
    }
    // The owner's studio gets in, and so does a viewer who says hello.
    let mut studio = open(&app, &id, Some(&owner), None).await;
    send(&mut studio, &hello(ClientRole::Studio, None, None)).await;
    match welcome(&mut studio).await {
        ServerEvent::Welcome { username, .. } => assert_eq!(username.as_deref(), Some("owner")),
        other => panic!("{other:?}"),
    }
    let mut viewer = open(&app, &id, None, None).await;
    send(&mut viewer, &hello(ClientRole::Viewer, None, None)).await;
    welcome(&mut viewer).await;
    // Each silent one is closed at the deadline, with its code.
    for ws in &mut silent {
        let (code, reason) = next_event(ws).await.expect_err("closed");
        assert_eq!((code, reason.code.as_str()), (4408, "hello_timeout"));
    }
}

#[tokio::test]
async fn the_events_cap_per_address_spares_the_owners_sockets() {
    let app = TestApp::start(|c| c.connections.events_per_ip = 3).await;
    let (id, owner) = owned_stream(&app).await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut ws = open(&app, &id, None, None).await;
        send(&mut ws, &hello(ClientRole::Viewer, None, None)).await;
        welcome(&mut ws).await;
        viewers.push(ws);
    }
    let mut fourth = open(&app, &id, None, None).await;
    let (code, reason) = next_event(&mut fourth).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4429, "too_many_connections"));
    // The owner's studio, from the same address, has places of its own.
    let mut studio = open(&app, &id, Some(&owner), None).await;
    send(&mut studio, &hello(ClientRole::Studio, None, None)).await;
    welcome(&mut studio).await;
    // A viewer leaves: a place comes back.
    let mut gone = viewers.pop().expect("a viewer");
    gone.close(None).await.expect("close");
    drop(gone);
    let mut admitted = false;
    for _ in 0..200 {
        let mut ws = open(&app, &id, None, None).await;
        send(&mut ws, &hello(ClientRole::Viewer, None, None)).await;
        match next_event(&mut ws).await {
            Ok(_) => {
                admitted = true;
                break;
            }
            Err((4429, _)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(admitted, "a place came back");
}

fn ingest_request(
    app: &TestApp,
    id: &str,
    session: Option<&str>,
    origin: &str,
    host: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{}/api/v1/streams/{id}/ingest", app.addr)
        .into_client_request()
        .expect("request");
    let h = req.headers_mut();
    if let Some(s) = session {
        h.insert(
            "cookie",
            format!("onair_session={s}").parse().expect("cookie"),
        );
    }
    h.insert("origin", origin.parse().expect("origin"));
    if let Some(host) = host {
        h.insert("host", host.parse().expect("host"));
    }
    req
}

fn ingest_hello() -> Message {
    let m = IngestMessage::Hello {
        version: 1,
        token: None,
        mime_type: "video/webm".into(),
        capture_start_ms: 1_795_300_000_000,
        resume_after: None,
        new_period: false,
    };
    Message::Text(serde_json::to_string(&m).expect("json").into())
}

#[tokio::test]
async fn ingest_sockets_are_capped_per_address_and_must_say_hello_in_time() {
    let app = TestApp::start(|c| {
        c.connections.ingest_per_ip = 2;
        c.connections.hello_timeout = Duration::from_secs(2);
    })
    .await;
    let (id, owner) = owned_stream(&app).await;
    let here = format!("http://{}", app.addr);
    let connect = |session: Option<String>| {
        let req = ingest_request(&app, &id, session.as_deref(), &here, None);
        async move {
            tokio_tungstenite::connect_async(req)
                .await
                .expect("connects")
                .0
        }
    };
    let mut first = connect(None).await;
    let mut second = connect(None).await;
    let mut third = connect(None).await;
    let (code, reason) = crate::ingest::next(&mut third).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4429, "too_many_connections"));
    // The owner's studio publishes from the same address all the same.
    let mut studio = connect(Some(owner)).await;
    studio.send(ingest_hello()).await.expect("hello");
    assert!(matches!(
        crate::ingest::next(&mut studio).await,
        Ok(ServerMessage::Ready { .. })
    ));
    // The silent ones are closed at the hello deadline, freeing their places.
    for ws in [&mut first, &mut second] {
        let (code, reason) = crate::ingest::next(ws).await.expect_err("closed");
        assert_eq!((code, reason.code.as_str()), (4408, "hello_timeout"));
    }
}

#[tokio::test]
async fn the_sockets_origin_rule_is_the_csrf_rule_with_its_scheme() {
    let app = TestApp::start(|c| {
        c.accounts.public_url = url::Url::parse("https://live.example.com").ok()
    })
    .await;
    let (id, owner) = owned_stream(&app).await;
    let public_host = Some("live.example.com");

    // Events: the session counts (welcome names the user) or not.
    let events_user = |origin: &'static str, host: Option<&'static str>| {
        let app = &app;
        let id = id.clone();
        let owner = owner.clone();
        async move {
            let mut req = format!("ws://{}/api/v1/streams/{id}/events", app.addr)
                .into_client_request()
                .expect("request");
            let h = req.headers_mut();
            h.insert(
                "cookie",
                format!("onair_session={owner}").parse().expect("cookie"),
            );
            h.insert("origin", origin.parse().expect("origin"));
            if let Some(host) = host {
                h.insert("host", host.parse().expect("host"));
            }
            let mut ws = tokio_tungstenite::connect_async(req)
                .await
                .expect("connects")
                .0;
            send(&mut ws, &hello(ClientRole::Viewer, None, None)).await;
            match welcome(&mut ws).await {
                ServerEvent::Welcome { username, .. } => username,
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(
        events_user("https://live.example.com", public_host)
            .await
            .as_deref(),
        Some("owner")
    );
    assert_eq!(
        events_user("http://live.example.com", public_host).await,
        None,
        "the plain-http page of the public host is not this site"
    );
    // Behind a proxy that sends its own Host, the public origin still counts.
    assert_eq!(
        events_user("https://live.example.com", None)
            .await
            .as_deref(),
        Some("owner")
    );

    // Ingest: the owner's session publishes without a token only from this site.
    let mut ws = tokio_tungstenite::connect_async(ingest_request(
        &app,
        &id,
        Some(&owner),
        "http://live.example.com",
        public_host,
    ))
    .await
    .expect("connects")
    .0;
    ws.send(ingest_hello()).await.expect("hello");
    let (code, reason) = crate::ingest::next(&mut ws).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4001, "unauthorized"));
    let mut ws = tokio_tungstenite::connect_async(ingest_request(
        &app,
        &id,
        Some(&owner),
        "https://live.example.com",
        public_host,
    ))
    .await
    .expect("connects")
    .0;
    ws.send(ingest_hello()).await.expect("hello");
    assert!(matches!(
        crate::ingest::next(&mut ws).await,
        Ok(ServerMessage::Ready { .. })
    ));
}

/// An API write from `ip` (through `X-Forwarded-For`, which this server
/// trusts) with the owner's session: its status and `Retry-After`.
async fn write_from(
    app: &TestApp,
    ip: &str,
    session: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let res = app
        .http
        .post(app.url(path))
        .header("cookie", format!("onair_session={session}"))
        .header("origin", format!("http://{}", app.addr))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, retry, body)
}

#[tokio::test]
async fn api_writes_are_limited_per_client_and_reads_and_beacons_are_not() {
    let app = TestApp::start(|c| {
        c.accounts.trust_forwarded_for = true;
        c.connections.writes = onair_server::connections::writes::WriteLimits {
            per_minute: 60,
            burst: 5,
        };
    })
    .await;
    let (_, owner) = mint(&app, "owner", "broadcaster").await;
    let new = serde_json::json!({"title": "Spam?", "visibility": "public"});
    let mut id = String::new();
    for n in 0..5 {
        let (status, _, body) =
            write_from(&app, "192.0.2.1", &owner, "/api/v1/streams", new.clone()).await;
        assert_eq!(status, 201, "write {n}: {body}");
        id = body["id"].as_str().expect("id").to_string();
    }
    // The burst is spent: refused, with the wait stated, and nothing made.
    let (status, retry, body) =
        write_from(&app, "192.0.2.1", &owner, "/api/v1/streams", new.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(retry.as_deref(), Some("1"), "one write a second");
    let mine = app
        .state
        .db
        .list_streams(onair_server::db::streams::StreamFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(mine.len(), 5, "the refused write made nothing");
    // A server function that changes something counts too.
    let create = <app::streams::CreateStream as leptos::server_fn::ServerFn>::PATH;
    let (status, _, _) = write_from(&app, "192.0.2.1", &owner, create, serde_json::json!({})).await;
    assert_eq!(status, 429);

    // Reads are not writes: the API's GETs, and the server functions the
    // pages call (as POSTs) to load and refresh.
    let read = app
        .http
        .get(app.url(&format!("/api/v1/streams/{id}")))
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .expect("answered");
    assert_eq!(read.status(), 200);
    let me = <app::accounts::CurrentUser as leptos::server_fn::ServerFn>::PATH;
    for _ in 0..10 {
        let (status, _, body) =
            write_from(&app, "192.0.2.1", &owner, me, serde_json::json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    // Nor are beacons (their own bounds apply): whatever they answer, it
    // is not the write limit.
    for _ in 0..10 {
        let (status, _, body) = write_from(
            &app,
            "192.0.2.1",
            &owner,
            "/api/v1/beacons",
            serde_json::json!({}),
        )
        .await;
        assert_ne!(status, 429, "{body}");
    }

    // Another client is not touched; the first gets a write back after a
    // second.
    let (status, _, body) =
        write_from(&app, "192.0.2.2", &owner, "/api/v1/streams", new.clone()).await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) =
        write_from(&app, "192.0.2.1", &owner, "/api/v1/streams", new.clone()).await;
    assert_eq!(status, 201, "{body}");

    let limited = app.metric("onair_api_writes_limited_total").await;
    assert!(limited >= 2.0, "counted: {limited}");
}
