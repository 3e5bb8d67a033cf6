//! Profiles, the home page's lists and registration throttling over a real
//! socket: `GET /api/v1/users/{name}` (public streams only, live first, for
//! everyone including the owner), the `user_profile` and `recent_streams`
//! server functions, the server-rendered `/u/{name}` page (title, Open Graph,
//! escaped titles, 404), and the per-IP limit on new accounts.

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::accounts::{create_stream, mint};
use crate::support::TestApp;

/// Status, headers and JSON body (or the text as a JSON string).
struct Res {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Res {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn answer(res: reqwest::Response) -> Res {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn get(app: &TestApp, path: &str, session: Option<&str>) -> Res {
    let mut req = app.http.get(app.url(path));
    if let Some(s) = session {
        req = req.header("cookie", format!("onair_session={s}"));
    }
    answer(req.send().await.expect("answered")).await
}

/// Calls a server function as the hydrated app does (URL-encoded arguments).
async fn server_fn(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Res {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{}", app.addr))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send().await.expect("server function answers")).await
}

/// Sets a stream's state and times directly, so lists can be ordered by them.
async fn set_times(app: &TestApp, id: &str, state: &str, started: &str, ended: Option<&str>) {
    let ended = ended.map_or("NONE".to_string(), |e| format!("d'{e}'"));
    app.state
        .db
        .client()
        .query(format!(
            "UPDATE type::record('stream', $id) SET state = $state, \
             started_at = d'{started}', ended_at = {ended}"
        ))
        .bind(("id", id.to_string()))
        .bind(("state", state.to_string()))
        .await
        .expect("update")
        .check()
        .expect("update ok");
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn profiles_list_public_streams_only_live_first() {
    let app = TestApp::start(|_| {}).await;
    let (alice_id, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let new = |session: &'static str, title: &'static str, visibility: &'static str| {
        let app = &app;
        let session = match session {
            "alice" => alice.clone(),
            _ => bob.clone(),
        };
        async move {
            create_stream(app, &session, title, visibility).await["id"]
                .as_str()
                .expect("id")
                .to_string()
        }
    };
    let idle = new("alice", "Never live yet", "public").await;
    let ended_old = new("alice", "Last week", "public").await;
    let ended_new = new("alice", "Yesterday", "public").await;
    let live = new("alice", "On now", "public").await;
    let unlisted = new("alice", "Secret rehearsal", "unlisted").await;
    let private = new("alice", "Diary", "private").await;
    let xss = new("alice", "<img src=x onerror=alert(1)>", "public").await;
    let bobs = new("bob", "Bob builds synths", "public").await;
    // Never-live streams are listed newest first.
    for (id, at) in [
        (&idle, "2026-11-02T00:00:00Z"),
        (&xss, "2026-11-03T00:00:00Z"),
    ] {
        app.state
            .db
            .client()
            .query(format!(
                "UPDATE type::record('stream', $id) SET created_at = d'{at}'"
            ))
            .bind(("id", id.clone()))
            .await
            .expect("created_at")
            .check()
            .expect("created_at ok");
    }
    set_times(
        &app,
        &ended_old,
        "ended",
        "2026-11-01T10:00:00Z",
        Some("2026-11-01T11:00:00Z"),
    )
    .await;
    set_times(
        &app,
        &ended_new,
        "interrupted",
        "2026-11-20T10:00:00Z",
        Some("2026-11-20T10:30:00Z"),
    )
    .await;
    set_times(&app, &live, "live", "2026-11-21T09:00:00Z", None).await;
    set_times(&app, &unlisted, "live", "2026-11-21T09:30:00Z", None).await;
    set_times(
        &app,
        &private,
        "ended",
        "2026-11-21T07:00:00Z",
        Some("2026-11-21T08:00:00Z"),
    )
    .await;
    set_times(
        &app,
        &bobs,
        "ended",
        "2026-11-19T07:00:00Z",
        Some("2026-11-19T08:00:00Z"),
    )
    .await;

    // Anyone, and the owner too, sees the same public list: live, then ended
    // (most recent first), then never live (newest first).
    let expected = vec![
        live.clone(),
        ended_new.clone(),
        ended_old.clone(),
        xss.clone(),
        idle.clone(),
    ];
    for session in [None, Some(alice.as_str()), Some(bob.as_str())] {
        let res = get(&app, "/api/v1/users/alice", session).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(res.header("cache-control"), "no-store");
        assert_eq!(
            res.body["user"],
            json!({"id": alice_id, "username": "alice"})
        );
        assert_eq!(ids(&res.body["streams"]), expected, "{}", res.body);
        let text = res.body.to_string();
        assert!(!text.contains("Secret rehearsal") && !text.contains("Diary"));
        assert!(!text.contains("ingest_token"));
    }
    let first = &get(&app, "/api/v1/users/alice", None).await.body["streams"][0];
    assert_eq!(first["state"], "live");
    assert_eq!(first["started_at"], "2026-11-21T09:00:00Z");
    assert_eq!(first["visibility"], "public");

    // Names are compared in lower case; limit bounds the list.
    let res = get(&app, "/api/v1/users/ALICE?limit=2", None).await;
    assert_eq!(ids(&res.body["streams"]), expected[..2].to_vec());
    for (path, status, code) in [
        ("/api/v1/users/nobody", 404, "not_found"),
        ("/api/v1/users/Not%20A%20Name", 404, "not_found"),
        ("/api/v1/users/alice?limit=0", 400, "bad_request"),
        ("/api/v1/users/alice?limit=101", 400, "bad_request"),
        ("/api/v1/users/alice?mine=true", 400, "bad_request"),
    ] {
        let res = get(&app, path, None).await;
        assert_eq!(
            (res.status, res.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            res.body
        );
    }
    let res = get(&app, "/api/v1/users/nobody", None).await;
    assert_eq!(res.body["error"]["message"], "no user nobody");

    // A stream made unlisted leaves the profile at once.
    let res = app
        .http
        .patch(app.url(&format!("/api/v1/streams/{live}")))
        .header("cookie", format!("onair_session={alice}"))
        .header("origin", format!("http://{}", app.addr))
        .json(&json!({"visibility": "unlisted"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    let res = get(&app, "/api/v1/users/alice", None).await;
    assert_eq!(ids(&res.body["streams"]), expected[1..].to_vec());

    // The server functions the pages use.
    use app::streams::{RecentStreams, UserProfile};
    use leptos::server_fn::ServerFn;
    let res = server_fn(&app, UserProfile::PATH, &[("name", "alice")], &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(ids(&res.body["streams"]), expected[1..].to_vec());
    let res = server_fn(&app, UserProfile::PATH, &[("name", "nobody")], &[]).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body["Refused"]["code"], "not_found", "{}", res.body);
    let res = server_fn(&app, RecentStreams::PATH, &[], &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        ids(&res.body),
        vec![ended_new.clone(), bobs.clone(), ended_old.clone()],
        "public ended or interrupted streams, most recently ended first: {}",
        res.body
    );
    assert_eq!(res.body[0]["owner"], "alice");
    assert_eq!(res.body[0]["state"], "interrupted");
    assert_eq!(res.body[0]["ended_at"], "2026-11-20T10:30:00Z");
    assert_eq!(res.body[0]["viewers"], Value::Null);

    // The page: rendered on the server with its title and link previews; a
    // title with markup is text; the unlisted and private streams are absent.
    let res = get(&app, "/u/alice", None).await;
    assert_eq!(res.status, 200);
    let html = res.body.as_str().expect("html").to_string();
    assert!(html.contains("<title>alice · Onair</title>"), "{html}");
    assert!(html.contains(r#"<meta property="og:title" content="alice on Onair">"#));
    assert!(html.contains("Yesterday") && html.contains("Never live yet"));
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "escaped title"
    );
    assert!(!html.contains("<img src=x"), "markup in a title stays text");
    assert!(
        !html.contains("Secret rehearsal") && !html.contains("Diary") && !html.contains("On now")
    );
    assert!(html.contains("20 Nov 2026, 10:30 UTC"), "the ended time");
    let res = get(&app, "/u/nobody", None).await;
    assert_eq!(res.status, 404, "unknown users answer 404");
    assert!(res
        .body
        .as_str()
        .is_some_and(|h| h.contains("No such broadcaster")));

    // The home page lists the recent streams with links to the profiles.
    let html = get(&app, "/", None)
        .await
        .body
        .as_str()
        .expect("html")
        .to_string();
    assert!(
        html.contains("Recently live") && html.contains("Bob builds synths"),
        "recent list"
    );
    assert!(
        html.contains(r#"href="/u/bob""#),
        "owner links to the profile"
    );
}

#[tokio::test]
async fn the_recent_list_is_bounded() {
    let app = TestApp::start(|_| {}).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let mut made = Vec::new();
    for i in 0..14 {
        let id = create_stream(&app, &alice, &format!("Show {i}"), "public").await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let ended = format!("2026-11-{:02}T12:00:00Z", i + 1);
        set_times(&app, &id, "ended", "2026-10-01T00:00:00Z", Some(&ended)).await;
        made.push(id);
    }
    use app::streams::RecentStreams;
    use leptos::server_fn::ServerFn;
    let res = server_fn(&app, RecentStreams::PATH, &[], &[]).await;
    let newest: Vec<String> = made.iter().rev().take(12).cloned().collect();
    assert_eq!(ids(&res.body), newest);
}

#[tokio::test]
async fn registration_is_throttled_per_ip() {
    let app = TestApp::start(|c| {
        c.accounts.registration.per_ip = 2;
        c.accounts.registration.window = std::time::Duration::from_secs(600);
        c.accounts.trust_forwarded_for = true;
    })
    .await;
    let register = |username: &'static str, password: &'static str, ip: &'static str| {
        let app = &app;
        async move {
            answer(
                app.http
                    .post(app.url("/api/v1/auth/register"))
                    .header("x-forwarded-for", ip)
                    .json(&json!({"username": username, "password": password}))
                    .send()
                    .await
                    .expect("register"),
            )
            .await
        }
    };
    let ip = "203.0.113.7";
    assert_eq!(register("ann", "correct horse", ip).await.status, 201);
    // Refused registrations do not use up the allowance.
    assert_eq!(register("ann", "correct horse", ip).await.status, 409);
    assert_eq!(register("x", "correct horse", ip).await.status, 422);
    assert_eq!(register("ben", "correct horse", ip).await.status, 201);
    // The third account from this address waits.
    let res = register("cat", "correct horse", ip).await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert_eq!(res.body["error"]["code"], "too_many_registrations");
    assert!(res.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("try again in")));
    let retry: u64 = res.header("retry-after").parse().expect("Retry-After");
    assert!((590..=600).contains(&retry), "{retry}");
    assert_eq!(res.header("cache-control"), "no-store");
    assert!(app.state.db.user_named("cat").await.expect("db").is_none());

    // The register server function counts against the same limit.
    use app::accounts::Register;
    use leptos::server_fn::ServerFn;
    let res = server_fn(
        &app,
        Register::PATH,
        &[
            ("creds[username]", "cat"),
            ("creds[password]", "correct horse"),
        ],
        &[("x-forwarded-for", ip)],
    )
    .await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert_eq!(res.body["Refused"]["code"], "too_many_registrations");
    assert!(res
        .header("retry-after")
        .parse::<u64>()
        .is_ok_and(|s| s > 0));

    // Another address is not affected, and signing in still works.
    assert_eq!(
        register("cat", "correct horse", "203.0.113.8").await.status,
        201
    );
    let res = answer(
        app.http
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": "ann", "password": "correct horse"}))
            .send()
            .await
            .expect("login"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
}
