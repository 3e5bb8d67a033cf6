//! The HTTP edge over a real socket: health, readiness (including a store
//! outage), metrics, API errors and the pages.

use std::time::Duration;

use serde_json::Value;

use crate::support::{TestApp, Weed};

#[tokio::test]
async fn health_metrics_and_api_errors() {
    let app = TestApp::start(|_| {}).await;

    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["status"], "ok");

    let res = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"].as_array().map(Vec::len), Some(2));

    for path in ["/api/v1/nope", "/api/nothing", "/api"] {
        let res = app.http.get(app.url(path)).send().await.expect("api 404");
        assert_eq!(res.status(), 404, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/json"));
        let body: Value = res.json().await.expect("json error body");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(path),
            "{body}"
        );
    }

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/plain"));
    let text = metrics.text().await.expect("text");
    let healthz_line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for /healthz in:\n{text}"));
    let count: f64 = healthz_line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(count >= 1.0, "{healthz_line}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "latency histogram missing"
    );
    assert!(
        text.contains("route=\"fallback\""),
        "404s are counted as fallback"
    );
}

#[tokio::test]
async fn pages_render_on_the_server() {
    let app = TestApp::start(|_| {}).await;

    let res = app.http.get(app.url("/")).send().await.expect("home");
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("Go live from a browser tab."), "hero missing");
    assert!(html.contains("class=\"site-nav\""), "navigation missing");
    assert!(
        html.contains("Nobody is live right now."),
        "the live list was not rendered from the database"
    );
    assert!(html.contains("/pkg/onair.js"), "hydration script missing");

    let res = app
        .http
        .get(app.url("/no/such/page"))
        .send()
        .await
        .expect("404 page");
    assert_eq!(res.status(), 404);
    let html = res.text().await.expect("html");
    assert!(html.contains("Page not found"), "friendly 404 page missing");
}

/// The web bundle is served with what browsers need to keep and revalidate it:
/// a revalidation gets 304 (not the 404 page, which left pages without their
/// wasm and never interactive), ranges work, and a missing file is the 404 page.
#[tokio::test]
async fn static_files_answer_revalidation_and_ranges() {
    let site = tempfile::tempdir().expect("site root");
    std::fs::create_dir_all(site.path().join("pkg")).expect("pkg dir");
    let wasm = b"\0asm\x01\0\0\0 a small stand-in module body";
    std::fs::write(site.path().join("pkg/onair_bg.wasm"), wasm).expect("write wasm");
    let app = TestApp::start(|c| c.site_root = site.path().to_path_buf()).await;

    let res = app
        .http
        .get(app.url("/pkg/onair_bg.wasm"))
        .send()
        .await
        .expect("wasm");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let last_modified = res.headers()["last-modified"].clone();
    assert_eq!(res.bytes().await.expect("body").as_ref(), wasm);

    let res = app
        .http
        .get(app.url("/pkg/onair_bg.wasm"))
        .header("if-modified-since", last_modified)
        .send()
        .await
        .expect("revalidation");
    assert_eq!(
        res.status(),
        304,
        "a browser revalidating its copy must get 304"
    );
    assert!(res.bytes().await.expect("body").is_empty());

    let res = app
        .http
        .get(app.url("/pkg/onair_bg.wasm"))
        .header("range", "bytes=0-3")
        .send()
        .await
        .expect("range");
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.expect("body").as_ref(), &wasm[..4]);

    let res = app
        .http
        .head(app.url("/pkg/onair_bg.wasm"))
        .send()
        .await
        .expect("head");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"],
        wasm.len().to_string().as_str()
    );

    let res = app
        .http
        .get(app.url("/pkg/missing.wasm"))
        .send()
        .await
        .expect("missing");
    assert_eq!(res.status(), 404);
    assert!(res.text().await.expect("html").contains("Page not found"));
}

#[tokio::test]
async fn home_lists_live_streams_from_the_database() {
    let app = TestApp::start(|_| {}).await;
    app.state
        .db
        .client()
        .query(
            "CREATE user:bob SET username = 'bob', password_hash = 'x', role = 'broadcaster';
             CREATE stream:live1 SET owner = user:bob, title = 'Bob builds a synth', state = 'live',
                 ingest_token_hash = 'h', started_at = time::now();",
        )
        .await
        .expect("seed")
        .check()
        .expect("seed ok");
    let html = app
        .http
        .get(app.url("/"))
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("Bob builds a synth"),
        "live stream not listed"
    );
    assert!(!html.contains("Nobody is live right now."));
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let res = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz answers");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

#[tokio::test]
async fn readyz_follows_the_s3_store_and_the_process_keeps_running() {
    let mut weed = Weed::start();
    weed.create_bucket("media").await;
    let app = TestApp::start(|c| c.store = weed.store_config("media", "live")).await;

    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");

    weed.stop();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let store = body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "store"))
        .expect("store check");
    assert_eq!(store["ok"], false);
    assert!(
        store["reason"].as_str().unwrap_or("").contains("S3"),
        "{store}"
    );
    assert_eq!(store["target"], "s3://media/live");

    // Still serving other requests.
    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);

    weed.restart();
    let mut last = (0, Value::Null);
    for _ in 0..60 {
        last = readyz(&app).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(last.0, 200, "ready again after S3 came back: {}", last.1);
}

/// At `debug`, every request is logged with its URI: playback tokens must
/// not be in it. The real binary, so the log is exactly what an operator
/// gets (a subscriber inside this test process would share tracing's
/// global callsite state with the tests running next to it).
#[tokio::test]
async fn playback_tokens_are_redacted_from_logged_uris() {
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().expect("tempdir");
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let port = crate::support::free_port_pair();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--db",
            "mem://",
        ])
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .env("ONAIR_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start onair serve");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = "0123456789abcdef0123";
    if up {
        for path in [
            format!("/live/{id}/t/1999999999.SECRETPATHTOKEN/master.m3u8"),
            format!("/vod/{id}/t/1999999999.SECRETVODTOKEN/master.m3u8"),
            format!("/live/{id}/master.m3u8?_HLS_msn=1&token=1999999999.SECRETQUERYTOKEN"),
            format!("/api/v1/streams/{id}/transcript.txt?%74oken=SECRETENCODEDTOKEN"),
            format!("/watch/{id}?token=SECRETPAGETOKEN"),
        ] {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .expect("request");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).expect("read log");
    assert!(up, "the server did not start: {text}");
    assert!(
        text.contains(&format!("/live/{id}/t/REDACTED/master.m3u8")),
        "the request spans are logged: {text}"
    );
    assert!(text.contains("token=REDACTED"), "{text}");
    assert!(!text.contains("SECRET"), "a token reached the log: {text}");
}

/// Server functions read their arguments before they run: arguments they
/// cannot read are the caller's fault (400), not the server's (500).
#[tokio::test]
async fn server_functions_answer_malformed_arguments_with_400() {
    use leptos::server_fn::ServerFn;
    let app = TestApp::start(|_| {}).await;
    let get_stream = app::streams::GetStream::PATH;
    let search = app::search::Search::PATH;
    let create_stream = app::streams::CreateStream::PATH;
    let call = |path: &'static str, body: &'static str| {
        app.http
            .post(app.url(path))
            .header("origin", format!("http://{}", app.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for (path, body) in [
        (get_stream, ""),                           // missing argument
        (search, "q=x&limit=many"),                 // not a number
        (search, "q=x&limit=99999999999999999999"), // out of range
        (create_stream, "stream=%%%"),              // not an object
    ] {
        let res = call(path, body).await.expect("call");
        assert_eq!(res.status(), 400, "{path} {body}");
        let json: Value = res.json().await.expect("json error");
        assert_eq!(json["Refused"]["status"], 400, "{json}");
        assert_eq!(json["Refused"]["code"], "bad_request", "{json}");
    }
    // Well-formed arguments still reach the function.
    let res = call(search, "q=x&limit=5").await.expect("call");
    assert_eq!(res.status(), 200);
}
