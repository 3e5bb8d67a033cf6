//! Attacks from issue #10, each as the outside world would send it: stream
//! ids in every encoding on every media path, hostile titles in every
//! server-rendered page, and `/metrics` read by strangers.

use std::time::Duration;

use onair_server::origin::LiveStream;
use reqwest::Method;
use serde_json::Value;

use crate::accounts::{create_stream, mint};
use crate::support::TestApp;

/// A raw GET (reqwest keeps percent-escapes in the path as written).
async fn get(
    app: &TestApp,
    path: &str,
    session: Option<&str>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = app.http.request(Method::GET, app.url(path));
    if let Some(s) = session {
        req = req.header("cookie", format!("onair_session={s}"));
    }
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().await.unwrap_or_default(), headers)
}

fn put_live(app: &TestApp, id: &str) {
    let live = LiveStream::new(Duration::from_secs(1));
    live.set_master(
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\n720p/index.m3u8\n".into(),
    );
    live.set_init(
        "720p",
        "init.mp4",
        bytes::Bytes::from_static(b"init segment"),
    );
    app.state.origin.insert(id, live);
}

/// Every way of writing `id` in a path segment: (form, decodes to `id`).
fn encodings(id: &str) -> Vec<(String, bool)> {
    let first = id.as_bytes()[0];
    let rest = &id[1..];
    let all_lower: String = id.bytes().map(|b| format!("%{b:02x}")).collect();
    let all_upper: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let mixed: String = id
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            if i % 2 == 0 {
                format!("%{b:02x}")
            } else {
                (b as char).to_string()
            }
        })
        .collect();
    vec![
        (id.to_string(), true),
        (format!("%{first:02x}{rest}"), true),
        (format!("%{first:02X}{rest}"), true),
        (all_lower, true),
        (all_upper, true),
        (mixed, true),
        // Decoded once, these are not the id (or not an id at all): refused.
        (format!("%25{first:02x}{rest}"), false),
        (format!("%2525{first:02x}{rest}"), false),
        (id.to_uppercase(), false),
        (format!("{id}%2F"), false),
        (format!("{id}%00"), false),
    ]
}

const LIVE_FILES: &[&str] = &[
    "master.m3u8",
    "720p/index.m3u8",
    "720p/index.m3u8?_HLS_msn=0&_HLS_part=0",
    "720p/init.mp4",
    "720p/0.m4s",
    "720p/0.0.m4s",
    "subs/index.m3u8",
];
const VOD_FILES: &[&str] = &[
    "master.m3u8",
    "recording.mp4",
    "thumbnail.jpg",
    "720p/index.m3u8",
    "720p/init.mp4",
    "720p/0.m4s",
    "subs/captions.vtt",
];

#[tokio::test]
async fn encoded_ids_never_open_a_private_stream() {
    let app = TestApp::start(|_| {}).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let private = create_stream(&app, &alice, "Private", "private").await;
    let pid = private["id"].as_str().expect("id").to_string();
    let idle = create_stream(&app, &alice, "Private, not live", "private").await;
    let idle_id = idle["id"].as_str().expect("id").to_string();
    put_live(&app, &pid);

    for id in [&pid, &idle_id] {
        for (form, is_id) in encodings(id) {
            for (prefix, files) in [("live", LIVE_FILES), ("vod", VOD_FILES)] {
                for file in files {
                    let path = format!("/{prefix}/{form}/{file}");
                    let (status, body, _) = get(&app, &path, None).await;
                    let expected = if is_id { 403 } else { 404 };
                    assert_eq!(status, expected, "{path}: {body}");
                    let code: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    assert!(
                        code["error"]["code"].is_string(),
                        "{path}: a JSON error: {body}"
                    );
                }
            }
        }
    }

    // With the owner's token, the same decoded id plays, however it is written.
    let watch = app
        .http
        .get(app.url(&format!("/api/v1/streams/{pid}/watch")))
        .header("cookie", format!("onair_session={alice}"))
        .send()
        .await
        .expect("watch");
    let watch: Value = watch.json().await.expect("json");
    let token = watch["token"].as_str().expect("token").to_string();
    for (form, is_id) in encodings(&pid) {
        for path in [
            format!("/live/{form}/t/{token}/master.m3u8"),
            format!("/live/{form}/master.m3u8?token={token}"),
        ] {
            let (status, body, _) = get(&app, &path, None).await;
            assert_eq!(status, if is_id { 200 } else { 404 }, "{path}: {body}");
        }
    }
    // Another private stream's token opens nothing, encoded or not.
    let other = app
        .http
        .get(app.url(&format!("/api/v1/streams/{idle_id}/watch")))
        .header("cookie", format!("onair_session={alice}"))
        .send()
        .await
        .expect("watch");
    let other: Value = other.json().await.expect("json");
    let other_token = other["token"].as_str().expect("token");
    for (form, _) in encodings(&pid) {
        let path = format!("/live/{form}/t/{other_token}/master.m3u8");
        let (status, _, _) = get(&app, &path, None).await;
        assert!(status == 403 || status == 404, "{path}: {status}");
    }
}

#[tokio::test]
async fn metrics_name_no_stream_and_can_require_a_token() {
    let app = TestApp::start(|c| c.metrics_token = Some("s3cret-metrics".into())).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let private = create_stream(&app, &alice, "Private", "private").await;
    let pid = private["id"].as_str().expect("id").to_string();
    put_live(&app, &pid);
    let _ = get(&app, &format!("/live/{pid}/master.m3u8"), None).await;

    let (status, body, headers) = get(&app, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    for wrong in [
        "Bearer nope",
        "Bearer s3cret-metricsX",
        "Basic s3cret-metrics",
        "s3cret-metrics",
    ] {
        let res = app
            .http
            .get(app.url("/metrics"))
            .header("authorization", wrong)
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status().as_u16(), 401, "{wrong}");
    }
    let res = app
        .http
        .get(app.url("/metrics"))
        .header("authorization", "Bearer s3cret-metrics")
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.expect("text");
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(!text.contains(&pid), "a stream id in /metrics:\n{text}");

    // Without the flag, /metrics is open.
    let open = TestApp::start(|_| {}).await;
    let (status, _, _) = get(&open, "/metrics", None).await;
    assert_eq!(status, 200);
}

/// Titles that must stay text wherever a page shows them (at most 120 characters).
const HOSTILE: &[&str] = &[
    "</title><script>window.__pwned=1</script>",
    "</script><script>window.__pwned=2</script>",
    "\"><svg onload=\"window.__pwned=3\">",
    "'><img src=x onerror=\"window.__pwned=4\">",
];
/// Markup that must never reach a page's HTML as markup.
const MARKERS: &[&str] = &[
    "<script>window.__pwned",
    "<svg onload",
    "<img src=x onerror",
];

#[tokio::test]
async fn hostile_titles_are_escaped_in_every_rendered_page() {
    let app = TestApp::start(|_| {}).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let mut ids = Vec::new();
    for title in HOSTILE {
        let s = create_stream(&app, &alice, title, "public").await;
        let id = s["id"].as_str().expect("id").to_string();
        app.state
            .db
            .set_stream_state(&id, "live", onair_server::clock::now_ms())
            .await
            .expect("live");
        ids.push((id, *title));
    }
    let mut pages = vec![
        "/".to_string(),
        "/u/alice".into(),
        "/dashboard".into(),
        "/search?q=pwned".into(),
        "/streams".into(),
    ];
    for (id, _) in &ids {
        pages.extend([
            format!("/watch/{id}"),
            format!("/watch/{id}/transcript"),
            format!("/studio/{id}"),
            format!("/dashboard/{id}"),
            format!("/embed/{id}"),
        ]);
    }
    for page in &pages {
        let (status, html, headers) = get(&app, page, Some(&alice)).await;
        assert!(status < 500, "{page}: {status}");
        for marker in MARKERS {
            assert!(!html.contains(marker), "{page} holds {marker}:\n{html}");
        }
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{page}: no Content-Security-Policy"));
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or_else(|| panic!("{page}: no nonce in {csp}"));
        // Every inline script in the page carries this response's nonce.
        for tag in html.split("<script").skip(1) {
            let attrs = tag.split('>').next().unwrap_or("");
            if !attrs.contains("src=") {
                assert!(
                    attrs.contains(&format!("nonce=\"{nonce}\"")),
                    "{page}: <script{attrs}>"
                );
            }
        }
        // Exactly one <title>, and it holds no markup.
        assert_eq!(html.matches("<title>").count(), 1, "{page}");
        let title = html
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .unwrap_or("");
        assert!(!title.contains('<'), "{page}: <title>{title}</title>");
    }
    // Only the embeddable player may be framed by other sites; it is the
    // player alone (no site header), titled and linked to the watch page.
    for (id, _) in &ids {
        let ancestors = |headers: &reqwest::header::HeaderMap| {
            headers
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .and_then(|c| {
                    c.split(';')
                        .map(str::trim)
                        .find(|d| d.starts_with("frame-ancestors"))
                })
                .map(str::to_string)
        };
        let (_, watch, headers) = get(&app, &format!("/watch/{id}"), None).await;
        assert_eq!(
            ancestors(&headers).as_deref(),
            Some("frame-ancestors 'self'")
        );
        assert!(watch.contains("site-header"));
        let (status, embed, headers) = get(&app, &format!("/embed/{id}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(ancestors(&headers).as_deref(), Some("frame-ancestors *"));
        assert!(
            !embed.contains("site-header"),
            "no site header in the embed"
        );
        assert!(embed.contains(&format!("href=\"/watch/{id}\"")));
        // A sneaky path is not an embed.
        let (_, _, headers) = get(&app, &format!("/watch/{id}?x=/embed/"), None).await;
        assert_eq!(
            ancestors(&headers).as_deref(),
            Some("frame-ancestors 'self'")
        );
    }
    // The watch page's title is the stream's, escaped, not dropped.
    for (id, title) in &ids {
        let (_, html, _) = get(&app, &format!("/watch/{id}"), None).await;
        let escaped = app::html::escape_html(title);
        assert!(
            html.contains(&format!("<title>{escaped} · Onair</title>")),
            "{id}"
        );
    }
}
