//! Accounts, sessions, streams and private playback over a real socket: the
//! public JSON contract of docs/api.md, the permission matrix, CSRF, login
//! throttling, body limits, playback tokens on `/live`, and the admin CLI.
//!
//! Argon2 is slow in debug builds (about a second per hash), so most tests mint
//! sessions straight in the database and only the auth tests go through
//! register and login.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use onair_server::auth::playback::unix_now;
use onair_server::auth::{new_session_token, session_hash};
use onair_server::origin::LiveStream;

use onair_server::auth::throttle::ThrottleLimits;
use onair_server::auth::SecureCookies;
use onair_server::db::DbConfig;

use crate::support::{Config, TestApp};

/// `onair serve`'s defaults, to change one part of.
fn defaults() -> Config {
    Config::defaults(std::env::temp_dir())
}

/// The public URL the tests give the server.
fn public_url() -> url::Url {
    url::Url::parse("https://live.example.com").expect("url")
}

/// An answer: status, headers and JSON body (`Null` when empty or not JSON).
struct Res {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Res {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session id from `Set-Cookie`.
    fn session(&self) -> String {
        let cookie = self.header("set-cookie");
        cookie
            .strip_prefix("onair_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no session cookie in {cookie:?}"))
            .to_string()
    }
}

/// How a request presents itself.
#[derive(Default, Clone, Copy)]
struct Opts<'a> {
    /// Session cookie value.
    session: Option<&'a str>,
    /// `Origin` header; `None` means "same origin as a browser would send"
    /// when there is a session, and no header otherwise.
    origin: Option<&'a str>,
    /// Send no `Origin` even with a session.
    no_origin: bool,
    /// Extra headers.
    headers: &'a [(&'a str, &'a str)],
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>, o: Opts<'_>) -> Res {
    let mut req = app.http.request(method, app.url(path));
    if let Some(s) = o.session {
        req = req.header("cookie", format!("theme=dark; onair_session={s}"));
    }
    let same_origin = format!("http://{}", app.addr);
    match (o.origin, o.session, o.no_origin) {
        (Some(origin), _, _) => req = req.header("origin", origin),
        (None, Some(_), false) => req = req.header("origin", same_origin),
        _ => {}
    }
    for (k, v) in o.headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request answered");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Res {
        status,
        headers,
        body,
    }
}

fn as_user(session: &str) -> Opts<'_> {
    Opts {
        session: Some(session),
        ..Default::default()
    }
}

const ANON: Opts<'static> = Opts {
    session: None,
    origin: None,
    no_origin: false,
    headers: &[],
};

/// A user and a session made straight in the database (no argon2 in the way).
pub(crate) async fn mint(app: &TestApp, username: &str, role: &str) -> (String, String) {
    let user = app
        .state
        .db
        .create_user(username, "not-a-phc-string", role)
        .await
        .expect("user");
    let token = new_session_token().expect("token");
    app.state
        .db
        .create_session(&session_hash(&token), &user.id, Duration::from_secs(3600))
        .await
        .expect("session");
    (user.id, token)
}

pub(crate) async fn create_stream(
    app: &TestApp,
    session: &str,
    title: &str,
    visibility: &str,
) -> Value {
    let res = call(
        app,
        Method::POST,
        "/api/v1/streams",
        Some(json!({"title": title, "visibility": visibility})),
        as_user(session),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.body
}

#[tokio::test]
async fn register_login_logout_and_me() {
    let app = TestApp::start(|_| {}).await;

    // Like curl: no cookie, no Origin.
    let reg = call(
        &app,
        Method::POST,
        "/api/v1/auth/register",
        Some(json!({"username": "alice", "password": "correct horse"})),
        ANON,
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    assert_eq!(reg.body["username"], "alice");
    assert_eq!(reg.body["role"], "broadcaster", "new accounts broadcast");
    let id = reg.body["id"].as_str().expect("id").to_string();
    let cookie = reg.header("set-cookie").to_string();
    let first = reg.session();
    assert_eq!(first.len(), 64, "256 bits, hex");
    assert_eq!(
        cookie,
        format!("onair_session={first}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000"),
        "cookie flags (plain HTTP: not Secure)"
    );
    assert_eq!(reg.header("cache-control"), "no-store");

    let me = call(&app, Method::GET, "/api/v1/auth/me", None, as_user(&first)).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.body,
        json!({"id": id, "username": "alice", "role": "broadcaster"})
    );
    let anon = call(&app, Method::GET, "/api/v1/auth/me", None, ANON).await;
    assert_eq!((anon.status, anon.code()), (401, "unauthenticated"));
    let junk = call(&app, Method::GET, "/api/v1/auth/me", None, as_user("00ff")).await;
    assert_eq!(junk.status, 401, "an unknown session id is no session");

    // The database holds the argon2 hash and only the SHA-256 of session ids.
    let stored: Vec<Value> = app
        .state
        .db
        .client()
        .query("SELECT VALUE password_hash FROM user WHERE username = 'alice'")
        .await
        .expect("query")
        .take(0)
        .expect("rows");
    assert!(stored[0]
        .as_str()
        .is_some_and(|h| h.starts_with("$argon2id$")));
    let keys: Vec<String> = app
        .state
        .db
        .client()
        .query("SELECT VALUE <string> record::id(id) FROM session")
        .await
        .expect("query")
        .take(0)
        .expect("rows");
    assert_eq!(keys, vec![session_hash(&first)]);

    // Refusals.
    let dup = call(
        &app,
        Method::POST,
        "/api/v1/auth/register",
        Some(json!({"username": "alice", "password": "another password"})),
        ANON,
    )
    .await;
    assert_eq!((dup.status, dup.code()), (409, "username_taken"));
    for (body, code, status) in [
        (
            json!({"username": "Al", "password": "long enough"}),
            "validation_failed",
            422,
        ),
        (
            json!({"username": "bob", "password": "short"}),
            "validation_failed",
            422,
        ),
        (json!({"username": "bob"}), "invalid_body", 422),
        (
            json!({"username": "bob", "password": "long enough", "role": "admin"}),
            "invalid_body",
            422,
        ),
    ] {
        let res = call(
            &app,
            Method::POST,
            "/api/v1/auth/register",
            Some(body),
            ANON,
        )
        .await;
        assert_eq!((res.status, res.code()), (status, code), "{}", res.body);
    }
    let res = app
        .http
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_json");
    let res = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .body(r#"{"username":"alice","password":"correct horse"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 415, "JSON needs its content type");

    // Wrong password and unknown user: the same answer.
    let wrong = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": "alice", "password": "wrong horse"})),
        ANON,
    )
    .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    assert!(wrong.headers.get("set-cookie").is_none());
    let nobody = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": "nobody", "password": "wrong horse"})),
        ANON,
    )
    .await;
    assert_eq!(nobody.status, 401);
    assert_eq!(nobody.body, wrong.body, "no hint whether the user exists");

    // Log in (usernames are case-insensitive at login): a second, different session.
    let login = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": "ALICE", "password": "correct horse"})),
        ANON,
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["id"], id.as_str());
    let second = login.session();
    assert_ne!(second, first);

    // Log out ends that session only, and clears the cookie.
    let out = call(
        &app,
        Method::POST,
        "/api/v1/auth/logout",
        None,
        as_user(&second),
    )
    .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        out.header("set-cookie"),
        "onair_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    );
    let gone = call(&app, Method::GET, "/api/v1/auth/me", None, as_user(&second)).await;
    assert_eq!(gone.status, 401);
    let still = call(&app, Method::GET, "/api/v1/auth/me", None, as_user(&first)).await;
    assert_eq!(still.status, 200, "the other browser stays signed in");
    // Logging out without a session is fine too.
    let again = call(&app, Method::POST, "/api/v1/auth/logout", None, ANON).await;
    assert_eq!(again.status, 204);
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = TestApp::start(|c| c.accounts.open_registration = false).await;
    let res = call(
        &app,
        Method::POST,
        "/api/v1/auth/register",
        Some(json!({"username": "alice", "password": "correct horse"})),
        ANON,
    )
    .await;
    assert_eq!((res.status, res.code()), (403, "registration_closed"));
}

/// The `Secure` attribute of the cookie set by logout (same rule as login).
async fn secure_flag(app: &TestApp, headers: &[(&str, &str)]) -> bool {
    let res = call(
        app,
        Method::POST,
        "/api/v1/auth/logout",
        None,
        Opts { headers, ..ANON },
    )
    .await;
    assert_eq!(res.status, 204);
    res.header("set-cookie").ends_with("; Secure")
}

#[tokio::test]
async fn secure_cookie_modes() {
    let https = [("x-forwarded-proto", "https")];
    let auto = TestApp::start(|_| {}).await;
    assert!(!secure_flag(&auto, &[]).await, "plain HTTP");
    assert!(secure_flag(&auto, &https).await, "behind a TLS proxy");

    let never = TestApp::start(|c| c.accounts.secure_cookies = SecureCookies::Never).await;
    assert!(!secure_flag(&never, &https).await);

    let always = TestApp::start(|c| c.accounts.secure_cookies = SecureCookies::Always).await;
    assert!(secure_flag(&always, &[]).await);

    let public = TestApp::start(|c| c.accounts.public_url = Some(public_url())).await;
    assert!(secure_flag(&public, &[]).await, "the public URL is https");
}

/// A server that takes the client IP from `X-Forwarded-For` (so one test
/// can log in from several addresses), with the user `bob` (password
/// `correct horse`) and these throttling flags.
async fn throttled_app(limits: ThrottleLimits) -> TestApp {
    let app = TestApp::start(|c| {
        c.accounts.trust_forwarded_for = true;
        c.accounts.throttle = limits;
    })
    .await;
    let hash = onair_server::auth::passwords::hash_blocking("correct horse").expect("hash");
    app.state
        .db
        .create_user("bob", &hash, "broadcaster")
        .await
        .expect("bob");
    app
}

/// `POST /api/v1/auth/login` as `username` from client address `ip`.
async fn login_from(app: &TestApp, ip: &str, username: &str, password: &str) -> Res {
    call(
        app,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": username, "password": password})),
        Opts {
            headers: &[("x-forwarded-for", ip)],
            ..ANON
        },
    )
    .await
}

#[tokio::test]
async fn an_attackers_failures_do_not_lock_the_owner_out_from_another_address() {
    let app = throttled_app(ThrottleLimits {
        per_user: 2,
        per_ip: 4,
        window: Duration::from_secs(120),
        ..defaults().accounts.throttle
    })
    .await;
    let attacker = "203.0.113.66";
    for _ in 0..2 {
        assert_eq!(login_from(&app, attacker, "bob", "wrong").await.status, 401);
    }
    // The attacker's address is refused for bob, even with the right password.
    let blocked = login_from(&app, attacker, "bob", "correct horse").await;
    assert_eq!((blocked.status, blocked.code()), (429, "too_many_attempts"));
    let retry: u64 = blocked.header("retry-after").parse().expect("Retry-After");
    assert!((1..=120).contains(&retry), "{retry}");
    // Bob, from his own address, is not: no lock, no wait.
    let owner = login_from(&app, "198.51.100.7", "bob", "correct horse").await;
    assert_eq!(owner.status, 200, "{}", owner.body);
    assert!(!owner.session().is_empty());

    // Per IP: two more failures on other names fill the attacker's budget of
    // 4, and then every name is refused from there (but not elsewhere).
    assert_eq!(
        login_from(&app, attacker, "carol", "wrong").await.status,
        401
    );
    assert_eq!(
        login_from(&app, attacker, "dave", "wrong").await.status,
        401
    );
    let ip_blocked = login_from(&app, attacker, "erin", "whatever").await;
    assert_eq!(ip_blocked.status, 429, "{}", ip_blocked.body);
    assert!(!ip_blocked.header("retry-after").is_empty());
    assert_eq!(
        login_from(&app, "198.51.100.8", "erin", "whatever")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn failures_from_many_addresses_slow_a_username_down_but_never_lock_it() {
    let max_delay = 3u64;
    let app = throttled_app(ThrottleLimits {
        per_user: 1,
        window: Duration::from_secs(900),
        max_delay: Duration::from_secs(max_delay),
        ..defaults().accounts.throttle
    })
    .await;
    // Guesses from eight addresses, each within its own per-IP budget.
    let mut refused = 0;
    for n in 1..=8 {
        let res = login_from(&app, &format!("203.0.113.{n}"), "bob", "wrong").await;
        match res.status {
            401 => {}
            429 => {
                assert_eq!(res.code(), "too_many_attempts");
                let retry: u64 = res.header("retry-after").parse().expect("Retry-After");
                assert!((1..=max_delay).contains(&retry), "{retry}");
                refused += 1;
            }
            other => panic!("{other}: {}", res.body),
        }
    }
    // The owner, from yet another address, waits at most the back-off's
    // cap (what Retry-After says), never the window, and gets in.
    let mut owner = login_from(&app, "198.51.100.7", "bob", "correct horse").await;
    if owner.status == 429 {
        let retry: u64 = owner.header("retry-after").parse().expect("Retry-After");
        assert!((1..=max_delay).contains(&retry), "{retry}");
        tokio::time::sleep(Duration::from_secs(retry)).await;
        owner = login_from(&app, "198.51.100.7", "bob", "correct horse").await;
    }
    assert_eq!(
        owner.status, 200,
        "{} (after {refused} refusals)",
        owner.body
    );
}

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let app = TestApp::start(|_| {}).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let body = || Some(json!({"title": "Show", "visibility": "public"}));
    let evil = "http://evil.example";

    for opts in [
        Opts {
            origin: Some(evil),
            ..as_user(&alice)
        },
        Opts {
            origin: Some("null"),
            ..as_user(&alice)
        },
        Opts {
            no_origin: true,
            headers: &[("referer", "http://evil.example/page")],
            ..as_user(&alice)
        },
        // A signed-in request with neither header.
        Opts {
            no_origin: true,
            ..as_user(&alice)
        },
    ] {
        let res = call(&app, Method::POST, "/api/v1/streams", body(), opts).await;
        assert_eq!((res.status, res.code()), (403, "csrf"), "{}", res.body);
    }
    // A foreign origin cannot log anyone in either (login CSRF), nor call
    // server functions.
    let res = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": "alice", "password": "whatever1"})),
        Opts {
            origin: Some(evil),
            ..ANON
        },
    )
    .await;
    assert_eq!(res.code(), "csrf");
    let res = call(
        &app,
        Method::POST,
        "/api/fn/live_streams",
        None,
        Opts {
            origin: Some(evil),
            ..as_user(&alice)
        },
    )
    .await;
    assert_eq!(res.code(), "csrf");

    // Same origin (what the browser sends), or a matching Referer: accepted.
    let ok = call(
        &app,
        Method::POST,
        "/api/v1/streams",
        body(),
        as_user(&alice),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = ok.body["id"].as_str().expect("id").to_string();
    let referer = format!("http://{}/studio", app.addr);
    let res = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/streams/{id}"),
        Some(json!({"title": "Renamed"})),
        Opts {
            no_origin: true,
            headers: &[("referer", &referer)],
            ..as_user(&alice)
        },
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Foreign DELETE refused; reads are not affected.
    let res = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/streams/{id}"),
        None,
        Opts {
            origin: Some(evil),
            ..as_user(&alice)
        },
    )
    .await;
    assert_eq!(res.code(), "csrf");
    let res = call(
        &app,
        Method::GET,
        &format!("/api/v1/streams/{id}"),
        None,
        Opts {
            origin: Some(evil),
            ..as_user(&alice)
        },
    )
    .await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn request_bodies_are_limited() {
    let app = TestApp::start(|_| {}).await;
    let big = json!({"username": "alice", "password": "x".repeat(70 * 1024)});
    let res = call(&app, Method::POST, "/api/v1/auth/login", Some(big), ANON).await;
    assert_eq!((res.status, res.code()), (413, "payload_too_large"));

    // Chunked, without Content-Length: cut off at the limit as it streams in.
    let addr = app.addr;
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let chunk = "x".repeat(8192);
        let mut req = format!(
            "POST /api/v1/auth/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let head = r#"{"username":"alice","password":""#;
        req.push_str(&format!("{:x}\r\n{head}\r\n", head.len()));
        for _ in 0..10 {
            req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        req.push_str("0\r\n\r\n");
        // The server may answer and close before reading everything.
        let _ = s.write_all(req.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.split(' ').nth(1).unwrap_or("").to_string();
        (status, out)
    })
    .await
    .expect("raw request");
    assert_eq!(status, "413", "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
}

#[tokio::test]
async fn streams_crud_and_permissions() {
    let app = TestApp::start(|_| {}).await;
    let (alice_id, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let (_, root) = mint(&app, "root", "admin").await;
    let (_, vic) = mint(&app, "vic", "viewer").await;
    let new = || Some(json!({"title": "  Morning show ", "visibility": "public"}));

    // Create: 401 anonymous, 403 viewer, 201 broadcaster.
    let res = call(&app, Method::POST, "/api/v1/streams", new(), ANON).await;
    assert_eq!((res.status, res.code()), (401, "unauthenticated"));
    let res = call(&app, Method::POST, "/api/v1/streams", new(), as_user(&vic)).await;
    assert_eq!((res.status, res.code()), (403, "forbidden"));
    let res = call(
        &app,
        Method::POST,
        "/api/v1/streams",
        new(),
        as_user(&alice),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let s = res.body.clone();
    let id = s["id"].as_str().expect("id").to_string();
    assert_eq!(res.header("location"), format!("/api/v1/streams/{id}"));
    assert_eq!(s["title"], "Morning show", "trimmed");
    assert_eq!(s["description"], "");
    assert_eq!(s["visibility"], "public");
    assert_eq!(s["state"], "idle");
    assert_eq!(s["owner"], json!({"id": alice_id, "username": "alice"}));
    assert!(s["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(s["started_at"], Value::Null);
    let token = s["ingest_token"]
        .as_str()
        .expect("ingest token")
        .to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(
        app.state
            .db
            .check_ingest_token(&id, &token)
            .await
            .expect("db"),
        Some(true),
        "ingest accepts the token"
    );

    // Validation.
    for (body, code) in [
        (
            json!({"title": "", "visibility": "public"}),
            "validation_failed",
        ),
        (
            json!({"title": "x".repeat(121), "visibility": "public"}),
            "validation_failed",
        ),
        (
            json!({"title": "t", "description": "d".repeat(2001), "visibility": "public"}),
            "validation_failed",
        ),
        (
            json!({"title": "t", "visibility": "secret"}),
            "invalid_body",
        ),
        (json!({"title": "t"}), "invalid_body"),
        (
            json!({"title": "t", "visibility": "public", "state": "live"}),
            "invalid_body",
        ),
    ] {
        let res = call(
            &app,
            Method::POST,
            "/api/v1/streams",
            Some(body),
            as_user(&alice),
        )
        .await;
        assert_eq!((res.status, res.code()), (422, code), "{}", res.body);
    }

    // Read: anyone for public; the token is never shown again.
    let res = call(
        &app,
        Method::GET,
        &format!("/api/v1/streams/{id}"),
        None,
        ANON,
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(res.body.get("ingest_token").is_none());
    assert_eq!(res.body["title"], "Morning show");

    let private = create_stream(&app, &alice, "Private rehearsal", "private").await;
    let pid = private["id"].as_str().expect("id").to_string();
    let unlisted = create_stream(&app, &alice, "Unlisted", "unlisted").await;
    let uid = unlisted["id"].as_str().expect("id").to_string();

    // Private: 404 to anonymous and other users, visible to owner and admin.
    for (who, expect) in [
        (None, 404),
        (Some(&bob), 404),
        (Some(&alice), 200),
        (Some(&root), 200),
    ] {
        let opts = who.map(|s| as_user(s)).unwrap_or(ANON);
        let res = call(
            &app,
            Method::GET,
            &format!("/api/v1/streams/{pid}"),
            None,
            opts,
        )
        .await;
        assert_eq!(res.status, expect, "{}", res.body);
    }
    let res = call(
        &app,
        Method::GET,
        &format!("/api/v1/streams/{uid}"),
        None,
        ANON,
    )
    .await;
    assert_eq!(res.status, 200, "unlisted streams open by link");

    // Lists: public only, or mine.
    let ids = |res: &Res| -> Vec<String> {
        res.body["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    };
    let res = call(&app, Method::GET, "/api/v1/streams", None, as_user(&bob)).await;
    assert_eq!(ids(&res), vec![id.clone()]);
    let res = call(
        &app,
        Method::GET,
        "/api/v1/streams?mine=true",
        None,
        as_user(&alice),
    )
    .await;
    let mut mine = ids(&res);
    mine.sort();
    let mut expected = vec![id.clone(), pid.clone(), uid.clone()];
    expected.sort();
    assert_eq!(mine, expected);
    assert!(res.body["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .all(|s| s.get("ingest_token").is_none()));
    let res = call(
        &app,
        Method::GET,
        "/api/v1/streams?mine=true",
        None,
        as_user(&bob),
    )
    .await;
    assert_eq!(ids(&res), Vec::<String>::new());
    let res = call(&app, Method::GET, "/api/v1/streams?mine=true", None, ANON).await;
    assert_eq!(res.status, 401);
    let res = call(&app, Method::GET, "/api/v1/streams?state=live", None, ANON).await;
    assert_eq!(ids(&res), Vec::<String>::new());
    for bad in ["state=bogus", "limit=0", "limit=101", "mine=maybe"] {
        let res = call(
            &app,
            Method::GET,
            &format!("/api/v1/streams?{bad}"),
            None,
            ANON,
        )
        .await;
        assert_eq!((res.status, res.code()), (400, "bad_request"), "{bad}");
    }
    let res = call(
        &app,
        Method::GET,
        "/api/v1/streams?mine=true&limit=2",
        None,
        as_user(&alice),
    )
    .await;
    assert_eq!(ids(&res).len(), 2);

    // Change: 401 anonymous, 403 others (404 for private), owner and admin may.
    let path = format!("/api/v1/streams/{id}");
    let patch = || Some(json!({"title": "Evening show"}));
    let res = call(&app, Method::PATCH, &path, patch(), ANON).await;
    assert_eq!(res.status, 401);
    let res = call(&app, Method::PATCH, &path, patch(), as_user(&bob)).await;
    assert_eq!((res.status, res.code()), (403, "forbidden"));
    let res = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/streams/{pid}"),
        patch(),
        as_user(&bob),
    )
    .await;
    assert_eq!(res.status, 404);
    let res = call(&app, Method::PATCH, &path, patch(), as_user(&root)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["title"], "Evening show");
    let res = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"description": "Line one\nline two", "visibility": "unlisted"})),
        as_user(&alice),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["title"], "Evening show", "untouched");
    assert_eq!(res.body["description"], "Line one\nline two");
    assert_eq!(res.body["visibility"], "unlisted");
    for (body, code) in [
        (json!({"state": "live"}), "invalid_body"),
        (json!({"title": ""}), "validation_failed"),
        (json!({"visibility": "everyone"}), "invalid_body"),
    ] {
        let res = call(&app, Method::PATCH, &path, Some(body), as_user(&alice)).await;
        assert_eq!((res.status, res.code()), (422, code), "{}", res.body);
    }

    // New ingest token: owner or admin; the old one stops working.
    let token_path = format!("/api/v1/streams/{id}/token");
    let res = call(&app, Method::POST, &token_path, None, as_user(&bob)).await;
    assert_eq!(res.status, 403);
    let res = call(&app, Method::POST, &token_path, None, ANON).await;
    assert_eq!(res.status, 401);
    let res = call(&app, Method::POST, &token_path, None, as_user(&alice)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let fresh = res.body["ingest_token"]
        .as_str()
        .expect("new token")
        .to_string();
    assert_ne!(fresh, token);
    assert_eq!(
        app.state
            .db
            .check_ingest_token(&id, &token)
            .await
            .expect("db"),
        Some(false)
    );
    assert_eq!(
        app.state
            .db
            .check_ingest_token(&id, &fresh)
            .await
            .expect("db"),
        Some(true)
    );

    // Ingest moves the state and stamps the times; a live stream cannot be deleted.
    app.state
        .db
        .set_stream_state(&id, "live", onair_server::realtime::now_ms())
        .await
        .expect("live");
    let res = call(&app, Method::GET, &path, None, ANON).await;
    assert_eq!(res.body["state"], "live");
    assert!(res.body["started_at"].is_string());
    assert_eq!(res.body["ended_at"], Value::Null);
    let res = call(&app, Method::DELETE, &path, None, as_user(&alice)).await;
    assert_eq!((res.status, res.code()), (409, "stream_live"));
    let res = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"visibility": "public"})),
        as_user(&alice),
    )
    .await;
    assert_eq!(res.status, 200);
    let res = call(&app, Method::GET, "/api/v1/streams?state=live", None, ANON).await;
    assert_eq!(ids(&res), vec![id.clone()]);
    app.state
        .db
        .set_stream_state(&id, "ended", onair_server::realtime::now_ms())
        .await
        .expect("ended");
    let res = call(&app, Method::GET, &path, None, ANON).await;
    assert_eq!(res.body["state"], "ended");
    assert!(res.body["ended_at"].is_string());

    // Delete: 401, 403 for others, admin may.
    let res = call(&app, Method::DELETE, &path, None, ANON).await;
    assert_eq!(res.status, 401);
    let res = call(&app, Method::DELETE, &path, None, as_user(&bob)).await;
    assert_eq!(res.status, 403);
    let res = call(&app, Method::DELETE, &path, None, as_user(&root)).await;
    assert_eq!(res.status, 204);
    let res = call(&app, Method::GET, &path, None, as_user(&root)).await;
    assert_eq!((res.status, res.code()), (404, "not_found"));
    let res = call(&app, Method::DELETE, &path, None, as_user(&alice)).await;
    assert_eq!(res.status, 404);
    let res = call(&app, Method::GET, "/api/v1/streams/NOT-AN-ID!", None, ANON).await;
    assert_eq!(res.status, 404);

    // Wrong method: JSON 405.
    let res = call(
        &app,
        Method::PUT,
        &format!("/api/v1/streams/{uid}"),
        None,
        ANON,
    )
    .await;
    assert_eq!((res.status, res.code()), (405, "method_not_allowed"));
}

const MASTER: &str =
    "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\n720p/index.m3u8\n";

fn put_live(app: &TestApp, id: &str) {
    let live = LiveStream::new(Duration::from_secs(1));
    live.set_master(MASTER.to_string());
    live.set_init(
        "720p",
        "init.mp4",
        bytes::Bytes::from_static(b"init segment"),
    );
    app.state.origin.insert(id, live);
}

async fn get_live(app: &TestApp, path: &str) -> Res {
    call(
        app,
        Method::GET,
        path,
        None,
        Opts {
            origin: Some("http://player.example"),
            ..ANON
        },
    )
    .await
}

#[tokio::test]
async fn private_streams_play_only_with_a_valid_token() {
    let app = TestApp::start(|_| {}).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let private = create_stream(&app, &alice, "Private", "private").await;
    let pid = private["id"].as_str().expect("id").to_string();
    let public = create_stream(&app, &alice, "Public", "public").await;
    let qid = public["id"].as_str().expect("id").to_string();
    put_live(&app, &pid);
    put_live(&app, &qid);

    // Public: no token needed; watch says so.
    let res = get_live(&app, &format!("/live/{qid}/master.m3u8")).await;
    assert_eq!(res.status, 200);
    let watch = call(
        &app,
        Method::GET,
        &format!("/api/v1/streams/{qid}/watch"),
        None,
        ANON,
    )
    .await;
    assert_eq!(watch.status, 200, "{}", watch.body);
    assert_eq!(watch.body["path"], format!("/live/{qid}/master.m3u8"));
    assert_eq!(
        watch.body["url"],
        format!("http://{}/live/{qid}/master.m3u8", app.addr)
    );
    assert_eq!(watch.body["token"], Value::Null);

    // Private without a token: 403, readable cross-origin.
    let res = get_live(&app, &format!("/live/{pid}/master.m3u8")).await;
    assert_eq!((res.status, res.code()), (403, "playback_token_required"));
    assert_eq!(res.header("access-control-allow-origin"), "*");
    let res = get_live(&app, &format!("/live/{pid}/720p/init.mp4")).await;
    assert_eq!(res.status, 403, "media needs the token too");

    // Watch: only the owner (or an admin) gets a URL.
    for who in [None, Some(&bob)] {
        let opts = who.map(|s| as_user(s)).unwrap_or(ANON);
        let res = call(
            &app,
            Method::GET,
            &format!("/api/v1/streams/{pid}/watch"),
            None,
            opts,
        )
        .await;
        assert_eq!(res.status, 404);
    }
    let watch = call(
        &app,
        Method::GET,
        &format!("/api/v1/streams/{pid}/watch"),
        None,
        as_user(&alice),
    )
    .await;
    assert_eq!(watch.status, 200, "{}", watch.body);
    assert_eq!(watch.header("cache-control"), "no-store");
    let token = watch.body["token"].as_str().expect("token").to_string();
    let path = watch.body["path"].as_str().expect("path").to_string();
    assert_eq!(path, format!("/live/{pid}/t/{token}/master.m3u8"));
    let exp: u64 = token
        .split('.')
        .next()
        .and_then(|e| e.parse().ok())
        .expect("exp");
    let left = exp - unix_now();
    assert!((6 * 3600 - 5..=6 * 3600 + 300).contains(&left), "{left}");
    assert!(watch.body["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // With the token: the master playlist, and what its relative URIs point at.
    let url = watch.body["url"].as_str().expect("url").to_string();
    let res = app.http.get(&url).send().await.expect("master");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("text"), MASTER);
    let init_url = url::Url::parse(&url)
        .and_then(|u| u.join("720p/init.mp4"))
        .expect("relative URI");
    assert_eq!(
        init_url.path(),
        format!("/live/{pid}/t/{token}/720p/init.mp4")
    );
    let res = app.http.get(init_url).send().await.expect("init");
    assert_eq!(res.status(), 200);
    let cache = res.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .to_string();
    let max_age: u64 = cache
        .strip_prefix("public, max-age=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("capped max-age, got {cache}"));
    assert!(
        max_age <= left,
        "caches keep it no longer than the token lives"
    );
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), b"init segment");
    // The query form works as well.
    let res = get_live(&app, &format!("/live/{pid}/master.m3u8?token={token}")).await;
    assert_eq!(res.status, 200);

    // Tampered, for another stream, or expired: refused.
    let (e, sig) = token.split_once('.').expect("dot");
    let later = format!("{}.{sig}", exp + 3600);
    let mut flipped = sig.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{e}.{}", String::from_utf8(flipped).expect("ascii"));
    let other = app.state.accounts.playback.sign(&qid, exp);
    for bad in [later, flipped, other, "garbage".to_string()] {
        let res = get_live(&app, &format!("/live/{pid}/t/{bad}/master.m3u8")).await;
        assert_eq!(
            (res.status, res.code()),
            (403, "playback_token_invalid"),
            "{bad}"
        );
        assert_eq!(res.header("access-control-allow-origin"), "*");
    }
    let expired = app.state.accounts.playback.sign(&pid, unix_now() - 5);
    let res = get_live(&app, &format!("/live/{pid}/master.m3u8?token={expired}")).await;
    assert_eq!((res.status, res.code()), (403, "playback_token_expired"));

    // Visibility changes apply at once on this node.
    let patch = |v: &'static str| Some(json!({ "visibility": v }));
    let res = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/streams/{pid}"),
        patch("unlisted"),
        as_user(&alice),
    )
    .await;
    assert_eq!(res.status, 200);
    let res = get_live(&app, &format!("/live/{pid}/master.m3u8")).await;
    assert_eq!(res.status, 200, "unlisted: no token needed");
    let res = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/streams/{pid}"),
        patch("private"),
        as_user(&alice),
    )
    .await;
    assert_eq!(res.status, 200);
    let res = get_live(&app, &format!("/live/{pid}/master.m3u8")).await;
    assert_eq!(res.status, 403);

    // A window with no stream behind it in the database is not served.
    put_live(&app, "orphan1");
    let res = get_live(&app, "/live/orphan1/master.m3u8").await;
    assert_eq!(res.status, 404);
}

fn onair() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onair"));
    // Only what the test passes counts.
    for (k, _) in std::env::vars() {
        if k.starts_with("ONAIR_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ONAIR_LOG", "warn");
    cmd
}

fn run(mut cmd: Command, stdin: &str) -> (bool, String, String) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run onair");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("onair exits");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_cli_creates_and_updates_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().display().to_string();
    let create = |extra: &[&str]| {
        let mut cmd = onair();
        cmd.args(["admin", "create-user", "--data-dir", &data]);
        cmd.args(extra);
        cmd
    };

    let (ok, out, err) = tokio::task::spawn_blocking({
        let cmd = create(&["--username", "root", "--password-stdin", "--role", "admin"]);
        move || run(cmd, "correct horse battery\n")
    })
    .await
    .expect("cli");
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("created user root (admin"), "{out}");
    assert!(!out.contains("correct horse") && !err.contains("correct horse"));

    // Refusals, with a reason.
    let (ok, _, err) = tokio::task::spawn_blocking({
        let cmd = create(&["--username", "root", "--password-stdin", "--role", "admin"]);
        move || run(cmd, "short\n")
    })
    .await
    .expect("cli");
    assert!(!ok);
    assert!(err.contains("at least 8"), "{err}");
    let (ok, _, err) = tokio::task::spawn_blocking({
        let cmd = create(&[
            "--username",
            "Root!",
            "--password",
            "long enough",
            "--role",
            "admin",
        ]);
        move || run(cmd, "")
    })
    .await
    .expect("cli");
    assert!(!ok);
    assert!(err.contains("--username"), "{err}");
    let (ok, _, err) = tokio::task::spawn_blocking({
        let cmd = create(&[
            "--username",
            "root",
            "--password",
            "long enough",
            "--role",
            "owner",
        ]);
        move || run(cmd, "")
    })
    .await
    .expect("cli");
    assert!(!ok);
    assert!(err.contains("--role"), "{err}");

    // Again: the same user gets a new password and role.
    let (ok, out, err) = tokio::task::spawn_blocking({
        let cmd = create(&[
            "--username",
            "root",
            "--password",
            "new password 2",
            "--role",
            "admin",
        ]);
        move || run(cmd, "")
    })
    .await
    .expect("cli");
    assert!(ok, "{err}");
    assert!(out.contains("updated user root (admin"), "{out}");

    // The server on that database: the new password works, the old does not.
    let db = dir.path().join("db");
    let app = TestApp::start(|c| c.db.engine = DbConfig::Embedded(db)).await;
    let login = |password: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"username": "root", "password": password})),
                ANON,
            )
            .await
        }
    };
    assert_eq!(login("correct horse battery").await.status, 401);
    let res = login("new password 2").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["role"], "admin");
}

/// Calls a server function the way the browser's hydrated app does (URL-encoded
/// arguments, JSON answer).
async fn server_fn(app: &TestApp, path: &str, form: &[(&str, &str)], session: Option<&str>) -> Res {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{}", app.addr))
        .body(body);
    if let Some(s) = session {
        req = req.header("cookie", format!("onair_session={s}"));
    }
    let res = req.send().await.expect("server function answers");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

#[tokio::test]
async fn server_functions_follow_the_api_rules() {
    use app::accounts::{CurrentUser, Login, Logout, Register};
    use app::streams::{CreateStream, DeleteStream, MyStreams, WatchStream};
    use leptos::server_fn::ServerFn;

    let app = TestApp::start(|_| {}).await;
    let reg = server_fn(
        &app,
        Register::PATH,
        &[
            ("creds[username]", "sam"),
            ("creds[password]", "correct horse"),
        ],
        None,
    )
    .await;
    assert_eq!(reg.status, 200, "{}", reg.body);
    assert_eq!(reg.body["username"], "sam");
    assert!(reg.header("set-cookie").contains("HttpOnly; SameSite=Lax"));
    let sam = reg.session();

    let me = server_fn(&app, CurrentUser::PATH, &[], Some(&sam)).await;
    assert_eq!(me.body["role"], "broadcaster", "{}", me.body);
    let anon = server_fn(&app, CurrentUser::PATH, &[], None).await;
    assert_eq!(anon.body, Value::Null);

    let created = server_fn(
        &app,
        CreateStream::PATH,
        &[
            ("stream[title]", "Quiet"),
            ("stream[visibility]", "private"),
        ],
        Some(&sam),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert!(created.body["ingest_token"].is_string());
    let mine = server_fn(&app, MyStreams::PATH, &[], Some(&sam)).await;
    assert_eq!(mine.body.as_array().map(Vec::len), Some(1));
    let watch = server_fn(&app, WatchStream::PATH, &[("id", &id)], Some(&sam)).await;
    assert!(watch.body["path"]
        .as_str()
        .is_some_and(|p| p.starts_with(&format!("/live/{id}/t/"))));

    // Refusals carry the API's status and code.
    let (_, other) = mint(&app, "other", "broadcaster").await;
    let res = server_fn(&app, DeleteStream::PATH, &[("id", &id)], Some(&other)).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.body["Refused"]["code"], "not_found", "{}", res.body);
    let res = server_fn(&app, MyStreams::PATH, &[], None).await;
    assert_eq!(res.status, 401);
    let res = server_fn(
        &app,
        Login::PATH,
        &[
            ("creds[username]", "sam"),
            ("creds[password]", "wrong horse"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (res.status, &res.body["Refused"]["code"]),
        (401, &json!("invalid_credentials"))
    );

    let out = server_fn(&app, Logout::PATH, &[], Some(&sam)).await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let me = server_fn(&app, CurrentUser::PATH, &[], Some(&sam)).await;
    assert_eq!(me.body, Value::Null, "signed out");
}

/// A private stream's owner makes a share link that lasts the chosen time;
/// it plays for someone without an account, and nobody else can make one.
#[tokio::test]
async fn a_private_share_link_lasts_the_chosen_time_and_only_the_owner_makes_one() {
    let app = TestApp::start(|_| {}).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let stream = create_stream(&app, &alice, "Family show", "private").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/streams/{id}/share");
    let ask = |secs: Value| Some(json!({ "expires_in_secs": secs }));

    let anon = call(&app, Method::POST, &path, ask(json!(3600)), ANON).await;
    assert_eq!(anon.status, 401, "{}", anon.body);
    // Bob may not even see the private stream.
    let other = call(&app, Method::POST, &path, ask(json!(3600)), as_user(&bob)).await;
    assert_eq!(other.status, 404, "{}", other.body);
    // Lives outside 1 minute to 30 days: 422 naming the field; not a whole
    // number of seconds at all: 422 `invalid_body`.
    for (bad, code) in [
        (json!(59), "validation_failed"),
        (json!(30 * 24 * 3600 + 1), "validation_failed"),
        (json!(u64::MAX), "validation_failed"),
        (json!(-1), "invalid_body"),
        (json!(1.5), "invalid_body"),
        (json!("3600"), "invalid_body"),
    ] {
        let res = call(&app, Method::POST, &path, ask(bad.clone()), as_user(&alice)).await;
        assert_eq!(res.status, 422, "{bad}: {}", res.body);
        assert_eq!(res.body["error"]["code"], code, "{bad}: {}", res.body);
        assert!(
            res.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("expires_in_secs")),
            "{}",
            res.body
        );
    }
    let unknown = call(
        &app,
        Method::POST,
        &path,
        Some(json!({ "expires_in_secs": 3600, "forever": true })),
        as_user(&alice),
    )
    .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert_eq!(unknown.body["error"]["code"], "invalid_body");

    let before = unix_now();
    let made = call(
        &app,
        Method::POST,
        &path,
        ask(json!(7 * 24 * 3600)),
        as_user(&alice),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let token = made.body["token"].as_str().expect("token").to_string();
    assert_eq!(
        made.body["path"].as_str(),
        Some(format!("/watch/{id}?token={token}").as_str())
    );
    assert_eq!(
        made.body["url"].as_str(),
        Some(format!("http://{}/watch/{id}?token={token}", app.addr).as_str())
    );
    // It works for a week (the expiry is rounded up to 5 minutes), no longer.
    let exp: u64 = token
        .split_once('.')
        .expect("exp.sig")
        .0
        .parse()
        .expect("exp");
    assert!(
        exp >= before + 7 * 24 * 3600 && exp <= unix_now() + 7 * 24 * 3600 + 300,
        "{exp}"
    );
    let at = time::OffsetDateTime::parse(
        made.body["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    assert_eq!(at.unix_timestamp(), exp as i64);

    // Someone without an account: the watch page, and the token passes the
    // playback gate (the stream is not live, so 404, not 403); a forged one does not.
    let page = app
        .http
        .get(app.url(&format!("/watch/{id}?token={token}")))
        .send()
        .await
        .expect("page");
    let status = page.status().as_u16();
    let html = page.text().await.expect("html");
    assert_eq!(status, 200, "{}", &html[html.len().saturating_sub(3000)..]);
    let live = app
        .http
        .get(app.url(&format!("/live/{id}/t/{token}/master.m3u8")))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 404);
    let forged = format!("{exp}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let refused = app
        .http
        .get(app.url(&format!("/live/{id}/t/{forged}/master.m3u8")))
        .send()
        .await
        .expect("forged");
    assert_eq!(refused.status().as_u16(), 403);
}
