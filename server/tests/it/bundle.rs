//! The web bundle on the wire: the real `tools/web/bundle.sh finish` gives a
//! site root content-hashed names and .br/.gz variants, and the server sends
//! them by content negotiation, `immutable`; pages and JSON are compressed on
//! the fly; `/live` media never is. Compressed bodies are checked with the
//! brotli and gzip command-line tools (readers we did not write).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use futures::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use app::protocol::ingest::{ClientMessage, ServerMessage};

use crate::ingest::{mkv_h264_opus, next, send_chunks};
use crate::support::TestApp;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `tool args` with `input` on stdin and returns its stdout.
fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool} (make deps installs it): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("output");
    writer.join().expect("writer").expect("write stdin");
    assert!(out.status.success(), "{tool} {args:?} failed");
    out.stdout
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    match encoding {
        "br" => pipe("brotli", &["-d", "-c"], body),
        "gzip" => pipe("gzip", &["-d", "-c"], body),
        other => panic!("unexpected encoding {other}"),
    }
}

/// A site root as `make build-web` leaves it before `finish`: realistic
/// (compressible, but not trivially) stand-ins for the wasm-bindgen output,
/// the stylesheet and hls.js, and a public file.
fn unfinished_site() -> tempfile::TempDir {
    let site = tempfile::tempdir().expect("site root");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg");
    let mut js = String::new();
    let mut css = String::new();
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..4000u64 {
        // xorshift: bytes that vary, drawn from a small alphabet like real code.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        js.push_str(&format!(
            "export function f{i}(a) {{ return wasm.__wbg_{}(a, {}); }}\n",
            x % 97,
            x % 1013
        ));
        css.push_str(&format!(
            ".c{i} {{ margin: {}px; color: #{:06x}; }}\n",
            x % 40,
            x % 0xFFFFFF
        ));
        wasm.extend_from_slice(&[0x20, (x % 8) as u8, 0x41, (x % 128) as u8, 0x6a, 0x21]);
    }
    std::fs::write(pkg.join("onair.js"), &js).expect("js");
    std::fs::write(pkg.join("onair_bg.wasm"), &wasm).expect("wasm");
    std::fs::write(pkg.join("onair.css"), &css).expect("css");
    std::fs::write(pkg.join("hls.min.js"), format!("/* hls stand-in */{js}")).expect("hls");
    std::fs::write(
        site.path().join("favicon.svg"),
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\">{}</svg>",
            "<g/>".repeat(200)
        ),
    )
    .expect("svg");
    site
}

fn finish(site: &Path) {
    let script = repo_root().join("tools/web/bundle.sh");
    let out = Command::new(&script)
        .arg("finish")
        .arg(site)
        .output()
        .expect("run bundle.sh");
    assert!(
        out.status.success(),
        "bundle.sh finish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `key: name` lines of pkg/assets.txt.
fn manifest(site: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(site.join("pkg/assets.txt"))
        .expect("manifest")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii"))
        .unwrap_or("")
}

/// The security headers every answer keeps however it is encoded: `nosniff`
/// and the referrer policy (server/src/http/headers.rs).
fn assert_common_headers(res: &reqwest::Response, what: &str) {
    assert_eq!(header(res, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(
        header(res, "referrer-policy"),
        "strict-origin-when-cross-origin",
        "{what}"
    );
}

/// A page's Content-Security-Policy holds a nonce, and every inline script
/// of the (decoded) page carries it.
fn assert_page_policy(headers: &reqwest::header::HeaderMap, html: &str, what: &str) {
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("{what}: no nonce in {csp:?}"));
    assert!(nonce.len() >= 16, "{what}: nonce {nonce:?}");
    let mut inline = 0;
    for tag in html.split("<script").skip(1) {
        let attrs = tag.split('>').next().unwrap_or("");
        if !attrs.contains("src=") {
            inline += 1;
            assert!(
                attrs.contains(&format!("nonce=\"{nonce}\"")),
                "{what}: <script{attrs}>"
            );
        }
    }
    assert!(
        inline >= 2,
        "{what}: the theme and hydration scripts are inline"
    );
}

#[tokio::test]
async fn the_bundle_is_content_hashed_precompressed_and_immutable() {
    let site = unfinished_site();
    let raw: Vec<(&str, Vec<u8>)> = ["onair.js", "onair_bg.wasm", "onair.css", "hls.min.js"]
        .into_iter()
        .map(|f| {
            (
                f,
                std::fs::read(site.path().join("pkg").join(f)).expect("read"),
            )
        })
        .collect();
    finish(site.path());
    let names = manifest(site.path());
    let js = &names["js"];
    let wasm = &names["wasm"];
    let stem = js.strip_suffix(".js").expect(".js");
    assert!(
        stem.len() == "onair-".len() + 16 && stem.starts_with("onair-"),
        "{js}"
    );
    assert_eq!(wasm, &format!("{stem}_bg.wasm"));
    assert!(names["css"].starts_with("onair-") && names["hls"].starts_with("hls-"));
    // The unhashed names are gone: nothing can run a new js with an old wasm.
    for (f, _) in &raw {
        assert!(!site.path().join("pkg").join(f).exists(), "{f} left behind");
    }

    let app = TestApp::start(|c| c.site_root = site.path().to_path_buf()).await;

    // The page links the hashed names, and is itself never kept unasked.
    let res = app
        .http
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("home");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-encoding"), "gzip");
    assert!(header(&res, "vary")
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    assert_eq!(header(&res, "cache-control"), "private, no-cache");
    assert_common_headers(&res, "home");
    let headers = res.headers().clone();
    let html = decode("gzip", &res.bytes().await.expect("body"));
    let html = String::from_utf8(html).expect("utf-8");
    // Compressed on the fly, the page keeps its per-response nonce.
    assert_page_policy(&headers, &html, "home (gzip)");
    for name in [js, wasm, &names["css"], &names["hls"]] {
        assert!(
            html.contains(&format!("/pkg/{name}")),
            "{name} not linked in:\n{html}"
        );
    }
    assert!(
        !html.contains("/pkg/onair.css"),
        "the unhashed stylesheet is linked"
    );
    // The 404 page is rendered by another handler: it links them too.
    let res = app
        .http
        .get(app.url("/no/such/page"))
        .send()
        .await
        .expect("404");
    assert_eq!(res.status(), 404);
    assert_eq!(header(&res, "cache-control"), "private, no-cache");
    let html = res.text().await.expect("html");
    assert!(html.contains(&format!("/pkg/{js}")), "{html}");
    assert!(html.contains(&format!("/pkg/{}", names["css"])), "{html}");

    let pairs = [
        (js.as_str(), &raw[0].1, "text/javascript"),
        (wasm.as_str(), &raw[1].1, "application/wasm"),
        (names["css"].as_str(), &raw[2].1, "text/css"),
        (names["hls"].as_str(), &raw[3].1, "text/javascript"),
    ];
    for (name, bytes, mime) in pairs {
        let url = app.url(&format!("/pkg/{name}"));
        for (accept, expect) in [
            ("br", "br"),
            ("gzip", "gzip"),
            ("gzip, deflate, br, zstd", "br"),
        ] {
            let res = app
                .http
                .get(&url)
                .header("accept-encoding", accept)
                .send()
                .await
                .expect("asset");
            assert_eq!(res.status(), 200, "{name}");
            assert_eq!(
                header(&res, "content-encoding"),
                expect,
                "{name} for {accept}"
            );
            assert!(
                header(&res, "vary")
                    .to_ascii_lowercase()
                    .contains("accept-encoding"),
                "{name}: no Vary"
            );
            assert_eq!(header(&res, "cache-control"), IMMUTABLE, "{name}");
            assert_common_headers(&res, name);
            assert!(header(&res, "content-type").starts_with(mime), "{name}");
            // The variant written at build time, not one compressed now.
            let variant = site.path().join("pkg").join(format!(
                "{name}.{}",
                if expect == "br" { "br" } else { "gz" }
            ));
            let variant = std::fs::read(&variant).expect("precompressed variant");
            assert_eq!(
                header(&res, "content-length"),
                variant.len().to_string().as_str(),
                "{name} {expect}"
            );
            let body = res.bytes().await.expect("body");
            assert_eq!(&body[..], &variant[..], "{name} {expect}");
            assert!(body.len() < bytes.len(), "{name} {expect} is not smaller");
            assert_eq!(&decode(expect, &body), bytes, "{name} {expect} differs");
        }
        // No Accept-Encoding: the file as it is.
        let res = app.http.get(&url).send().await.expect("identity");
        assert_eq!(header(&res, "content-encoding"), "");
        assert_eq!(header(&res, "cache-control"), IMMUTABLE);
        assert_eq!(
            header(&res, "content-length"),
            bytes.len().to_string().as_str()
        );
        assert_eq!(&res.bytes().await.expect("body")[..], &bytes[..]);
    }

    // Ranges still work on a bundle file.
    let res = app
        .http
        .get(app.url(&format!("/pkg/{wasm}")))
        .header("range", "bytes=4-11")
        .send()
        .await
        .expect("range");
    assert_eq!(res.status(), 206);
    assert_eq!(
        header(&res, "content-range"),
        format!("bytes 4-11/{}", raw[1].1.len())
    );
    assert_eq!(&res.bytes().await.expect("body")[..], &raw[1].1[4..12]);

    // An unhashed file is kept but revalidated; it has its variants too.
    let res = app
        .http
        .get(app.url("/favicon.svg"))
        .header("accept-encoding", "br")
        .send()
        .await
        .expect("favicon");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "cache-control"), "no-cache");
    assert_eq!(header(&res, "content-encoding"), "br");
    let svg = std::fs::read(site.path().join("favicon.svg")).expect("svg");
    assert_eq!(decode("br", &res.bytes().await.expect("body")), svg);

    // A second finish after a rebuild with a changed stylesheet: new name,
    // the old one gone with its variants, the rest untouched.
    let old_css = names["css"].clone();
    std::fs::write(site.path().join("pkg/onair.js"), &raw[0].1).expect("js");
    std::fs::write(site.path().join("pkg/onair_bg.wasm"), &raw[1].1).expect("wasm");
    std::fs::write(site.path().join("pkg/onair.css"), b"body { color: red; }\n").expect("css");
    std::fs::write(site.path().join("pkg/hls.min.js"), &raw[3].1).expect("hls");
    finish(site.path());
    let again = manifest(site.path());
    assert_eq!(again["js"], *js, "same bytes, same name");
    assert_ne!(again["css"], old_css);
    for suffix in ["", ".br", ".gz"] {
        assert!(!site.path().join(format!("pkg/{old_css}{suffix}")).exists());
    }
    assert!(site.path().join(format!("pkg/{wasm}.br")).exists());
}

/// Pages and JSON are compressed for clients that accept it; `/live` media
/// is sent as it is, whatever the client accepts; the ingest WebSocket
/// upgrade works with an `Accept-Encoding` header, as browsers send it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_answers_are_compressed_and_live_media_never() {
    let app = TestApp::start(|_| {}).await;

    let res = app
        .http
        .get(app.url("/api/v1/health-does-not-exist-but-json"))
        .header("accept-encoding", "br")
        .send()
        .await
        .expect("json");
    // Small JSON errors are not worth compressing.
    assert_eq!(res.status(), 404);
    assert_eq!(header(&res, "content-encoding"), "");

    let plain = app.http.get(app.url("/login")).send().await.expect("page");
    assert_eq!(header(&plain, "content-encoding"), "");
    let plain = plain.text().await.expect("html");
    let res = app
        .http
        .get(app.url("/login"))
        .header("accept-encoding", "br;q=1.0, gzip;q=0.5")
        .send()
        .await
        .expect("page");
    assert_eq!(header(&res, "content-encoding"), "br");
    assert_common_headers(&res, "/login");
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("body");
    let html = String::from_utf8(decode("br", &body)).expect("utf-8");
    assert!(
        body.len() * 2 < html.len(),
        "{} → {}",
        html.len(),
        body.len()
    );
    assert!(
        html.contains("</html>") && html.contains("Sign in"),
        "{html}"
    );
    // The page streams (out of order): whether the header's resource comes
    // inline or as a later chunk varies between requests, so the lengths may
    // differ. Both answers must run to the stream's last chunk.
    let last = "__INCOMPLETE_CHUNKS=[];</script>";
    assert!(plain.ends_with(last), "plain page cut short:\n{plain}");
    assert!(html.ends_with(last), "compressed page cut short:\n{html}");
    assert_page_policy(&headers, &html, "/login (br)");

    // Publish a few seconds over the ingest WebSocket, upgrading with the
    // header a browser sends.
    let (id, token) = app.new_stream().await;
    let chunks: Vec<Vec<u8>> = mkv_h264_opus(4)
        .chunks(32 * 1024)
        .map(<[u8]>::to_vec)
        .collect();
    let n = chunks.len() as u64;
    let mut req = format!("ws://{}/api/v1/streams/{id}/ingest", app.addr)
        .into_client_request()
        .expect("request");
    for (name, value) in [
        ("authorization", format!("Bearer {token}")),
        ("accept-encoding", "gzip, deflate, br, zstd".to_string()),
    ] {
        req.headers_mut()
            .insert(name, value.parse().expect("header"));
    }
    let (mut ws, upgrade) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the upgrade works with Accept-Encoding");
    assert_eq!(upgrade.status(), 101);
    assert!(upgrade.headers().get("content-encoding").is_none());
    let hello = ClientMessage::Hello {
        version: 1,
        token: None,
        mime_type: "video/x-matroska;codecs=avc1,opus".into(),
        capture_start_ms: 1_795_300_000_000,
        resume_after: None,
        new_period: false,
    };
    ws.send(Message::Text(
        serde_json::to_string(&hello).expect("json").into(),
    ))
    .await
    .expect("hello");
    match next(&mut ws).await {
        Ok(ServerMessage::Ready { next_seq, .. }) => assert_eq!(next_seq, 0),
        other => panic!("unexpected answer to hello: {other:?}"),
    }
    send_chunks(&mut ws, &chunks, 0, n).await;
    ws.send(Message::Text(
        serde_json::to_string(&ClientMessage::End)
            .expect("json")
            .into(),
    ))
    .await
    .expect("end");
    assert_eq!(next(&mut ws).await.expect("ended"), ServerMessage::Ended);

    // JSON: a list of a few streams.
    for _ in 0..3 {
        app.new_stream().await;
    }
    let plain: serde_json::Value = app
        .http
        .get(app.url("/api/v1/streams"))
        .send()
        .await
        .expect("json")
        .json()
        .await
        .expect("json body");
    let res = app
        .http
        .get(app.url("/api/v1/streams"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("json");
    assert_eq!(header(&res, "content-encoding"), "gzip");
    assert_eq!(
        header(&res, "cache-control"),
        "no-store",
        "API answers stay uncached"
    );
    let json = decode("gzip", &res.bytes().await.expect("body"));
    let json: serde_json::Value = serde_json::from_slice(&json).expect("gzip of JSON");
    assert_eq!(json, plain);
    assert_eq!(json["streams"].as_array().map(Vec::len), Some(4));

    for file in ["init.mp4", "0.m4s"] {
        let url = app.url(&format!("/live/{id}/360p/{file}"));
        let raw = app.http.get(&url).send().await.expect("media");
        assert_eq!(raw.status(), 200, "{file}");
        let raw = raw.bytes().await.expect("body");
        for accept in ["gzip", "br", "gzip, deflate, br, zstd"] {
            let res = app
                .http
                .get(&url)
                .header("accept-encoding", accept)
                .send()
                .await
                .expect("media");
            assert_eq!(res.status(), 200, "{file}");
            assert_eq!(header(&res, "content-encoding"), "", "{file} {accept}");
            assert!(
                !header(&res, "vary")
                    .to_ascii_lowercase()
                    .contains("accept-encoding"),
                "{file}: /live answers are left alone"
            );
            assert_eq!(res.bytes().await.expect("body"), raw, "{file}");
        }
        let res = app
            .http
            .get(&url)
            .header("accept-encoding", "gzip")
            .header("range", "bytes=0-7")
            .send()
            .await
            .expect("range");
        assert_eq!(header(&res, "content-encoding"), "", "{file} range");
    }
}
