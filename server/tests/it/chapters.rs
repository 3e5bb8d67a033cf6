//! Chapters over a real socket: made by the built-in segmentation without a
//! model and by the local AI server's real model, read with the watch rules
//! (JSON and the WebVTT `chapters` track), edited by the owner within the
//! rules, and refused clearly.

use std::time::{Duration, Instant};

use onair_server::auth::playback::unix_now;
use onair_server::summary::SummaryConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{AiServer, TestApp};
use crate::transcripts::{call, completions, get, lines, llm, world, Res};

/// A 4-minute stream on three topics, a line every 5 s: bread (0–80 s), the
/// Rust compiler (80–160 s), tomatoes (160–240 s).
const TOPICS: [&str; 3] = [
    "The sourdough starter needs flour and water. Knead the dough, proof the loaf, bake the bread in a hot oven.",
    "The Rust compiler and its borrow checker track every reference. Lifetimes and ownership keep the value safe.",
    "Tomato plants in the garden need sun and soil. Water the tomatoes and harvest the red fruit in the garden.",
];

async fn three_topics(app: &TestApp, id: &str) {
    let texts: Vec<(i64, &str)> = (0..48).map(|i| (i as i64 * 5000, TOPICS[i / 16])).collect();
    lines(app, id, &texts).await;
}

fn path(id: &str) -> String {
    format!("/api/v1/streams/{id}/chapters")
}

/// Polls the chapters until no job runs.
async fn settle(app: &TestApp, id: &str, session: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let res = get(app, &path(id), Some(session)).await;
        assert_eq!(res.status, 200, "{}", res.text);
        if res.body["running"] != true {
            return res.body;
        }
        assert!(
            start.elapsed() < limit,
            "the chapters still run after {limit:?}: {}",
            res.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn put(app: &TestApp, id: &str, session: Option<&str>, body: Value) -> Res {
    let mut req = app.http.put(app.url(&path(id))).json(&body);
    if let Some(s) = session {
        req = req
            .header("cookie", format!("onair_session={s}"))
            .header("origin", format!("http://{}", app.addr));
    }
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    Res {
        status,
        headers: Default::default(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// The cues of a WebVTT `chapters` track: (start, end, title).
fn cues(vtt: &str) -> Vec<(String, String, String)> {
    assert!(vtt.starts_with("WEBVTT\n\n"), "{vtt}");
    vtt.split("\n\n")
        .skip(1)
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let l: Vec<&str> = block.lines().collect();
            let (from, to) = l[1].split_once(" --> ").expect("a timing line");
            (from.to_string(), to.to_string(), l[2].to_string())
        })
        .collect()
}

#[tokio::test]
async fn without_a_model_chapters_come_from_the_transcript_and_the_owner_edits_them() {
    let app = TestApp::start(|_| {}).await;
    let w = world(&app).await;

    // Before a transcript: nothing to make, no track.
    let none = call(&app, Method::POST, &path(&w.public), Some(&w.owner)).await;
    assert_eq!((none.status, none.code()), (409, "no_transcript"));
    let no_track = get(&app, &format!("{}.vtt", path(&w.public)), None).await;
    assert_eq!((no_track.status, no_track.code()), (404, "no_chapters"));

    three_topics(&app, &w.public).await;
    three_topics(&app, &w.private).await;

    // Only the owner (or an admin) makes them.
    let anon = call(&app, Method::POST, &path(&w.public), None).await;
    assert_eq!((anon.status, anon.code()), (401, "unauthenticated"));
    let other = call(&app, Method::POST, &path(&w.public), Some(&w.other)).await;
    assert_eq!((other.status, other.code()), (403, "forbidden"));

    let started = call(&app, Method::POST, &path(&w.public), Some(&w.owner)).await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["llm"], false);
    let done = settle(&app, &w.public, &w.owner, Duration::from_secs(30)).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    let made = &done["chapters"];
    assert_eq!(made["kind"], "builtin");
    assert_eq!(made["model"], Value::Null);
    // The topic changes, found from the words alone.
    let starts: Vec<i64> = made["chapters"]
        .as_array()
        .expect("chapters")
        .iter()
        .map(|c| c["start_ms"].as_i64().expect("start"))
        .collect();
    assert_eq!(starts, [0, 80_000, 160_000], "{made}");
    let titles: Vec<&str> = made["chapters"]
        .as_array()
        .expect("chapters")
        .iter()
        .map(|c| c["title"].as_str().expect("title"))
        .collect();
    // Each title is made of its own topic's words.
    for (title, topic) in titles.iter().zip(TOPICS) {
        let topic = topic.to_lowercase();
        assert!(
            title
                .to_lowercase()
                .split(' ')
                .filter(|w| *w != "and")
                .all(|w| topic.contains(w)),
            "{title:?} is not about {topic:?}"
        );
    }

    // Anyone who may watch reads them; the track has a cue per chapter,
    // each up to the next.
    let read = get(&app, &path(&w.public), None).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["chapters"], *made);
    let vtt = get(&app, &format!("{}.vtt", path(&w.public)), None).await;
    assert_eq!(vtt.status, 200);
    assert_eq!(vtt.header("content-type"), "text/vtt; charset=utf-8");
    let c = cues(&vtt.text);
    assert_eq!(c.len(), 3, "{}", vtt.text);
    assert_eq!(
        (c[0].0.as_str(), c[0].1.as_str()),
        ("00:00:00.000", "00:01:20.000")
    );
    assert_eq!(
        (c[1].0.as_str(), c[1].1.as_str()),
        ("00:01:20.000", "00:02:40.000")
    );

    // A private stream's: its owner, or a playback token; not a stranger.
    let private = path(&w.private);
    assert_eq!(
        call(&app, Method::POST, &private, Some(&w.owner))
            .await
            .status,
        202
    );
    settle(&app, &w.private, &w.owner, Duration::from_secs(30)).await;
    assert_eq!(get(&app, &private, None).await.status, 404);
    assert_eq!(
        get(&app, &format!("{private}.vtt"), Some(&w.other))
            .await
            .status,
        404
    );
    let (token, _) =
        app.state
            .accounts
            .playback
            .issue(&w.private, Duration::from_secs(600), unix_now());
    let with_token = get(&app, &format!("{private}.vtt?token={token}"), None).await;
    assert_eq!(with_token.status, 200, "{}", with_token.text);

    // The owner's edit: checked against the rules, kept as `edited`.
    for (body, why) in [
        (json!({"chapters": []}), "needs at least one"),
        (
            json!({"chapters": [{"start_ms": 5000, "title": "Late"}]}),
            "start at 0:00",
        ),
        (
            json!({"chapters": [{"start_ms": 0, "title": "A"}, {"start_ms": 0, "title": "B"}]}),
            "chapter 2 must start after",
        ),
        (
            json!({"chapters": [{"start_ms": 0, "title": "   "}]}),
            "chapter 1: a title",
        ),
        (
            json!({"chapters": [{"start_ms": 0, "title": "A"}, {"start_ms": 9_999_999_999_999_i64, "title": "Far"}]}),
            "",
        ),
    ] {
        let res = put(&app, &w.public, Some(&w.owner), body.clone()).await;
        if why.is_empty() {
            // No recording, so no known end: a huge start is kept as given.
            assert_eq!(res.status, 200, "{body}: {}", res.text);
            continue;
        }
        assert_eq!(
            (res.status, res.code()),
            (422, "invalid_chapters"),
            "{body}: {}",
            res.text
        );
        assert!(
            res.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(why)),
            "{}",
            res.text
        );
    }
    let bad_json = put(&app, &w.public, Some(&w.owner), json!({"chapters": "all"})).await;
    assert_eq!(bad_json.status, 422, "{}", bad_json.text);
    let stranger = put(
        &app,
        &w.public,
        Some(&w.other),
        json!({"chapters": [{"start_ms": 0, "title": "Mine"}]}),
    )
    .await;
    assert_eq!((stranger.status, stranger.code()), (403, "forbidden"));

    let edit = json!({"chapters": [
        {"start_ms": 0, "title": "  Bread <b>&</b> butter "},
        {"start_ms": 75_000, "title": "Compilers"},
    ]});
    let edited = put(&app, &w.public, Some(&w.owner), edit).await;
    assert_eq!(edited.status, 200, "{}", edited.text);
    assert_eq!(edited.body["chapters"]["kind"], "edited");
    assert_eq!(
        edited.body["chapters"]["chapters"],
        json!([
            {"start_ms": 0, "title": "Bread <b>&</b> butter"},
            {"start_ms": 75_000, "title": "Compilers"},
        ])
    );
    let vtt = get(&app, &format!("{}.vtt", path(&w.public)), None).await;
    let c = cues(&vtt.text);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].2, "Bread &lt;b&gt;&amp;&lt;/b&gt; butter");
    assert_eq!(c[0].1, "00:01:15.000");
}

#[tokio::test]
async fn chapters_with_the_local_model_are_ordered_in_range_and_titled() {
    let ai = AiServer::start();
    let app = TestApp::start(|c| {
        c.summary = SummaryConfig {
            llm: Some(llm(&ai.url, &ai.key, "smollm2-135m-instruct")),
            context_chars: 2000,
        }
    })
    .await;
    let w = world(&app).await;
    three_topics(&app, &w.public).await;
    let calls_before = completions(&ai).await;
    let started = call(&app, Method::POST, &path(&w.public), Some(&w.owner)).await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["llm"], true);
    let total = started.body["total_calls"].as_u64().expect("total");
    assert!(
        total >= 2,
        "a transcript over the context is cut: {}",
        started.body
    );
    let again = call(&app, Method::POST, &path(&w.public), Some(&w.owner)).await;
    assert_eq!((again.status, again.code()), (409, "summary_running"));
    let edit_meanwhile = put(
        &app,
        &w.public,
        Some(&w.owner),
        json!({"chapters": [{"start_ms": 0, "title": "Mine"}]}),
    )
    .await;
    assert!(
        edit_meanwhile.status == 409 || edit_meanwhile.status == 200,
        "{}",
        edit_meanwhile.text
    );

    let done = settle(&app, &w.public, &w.owner, Duration::from_secs(240)).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(done["done_calls"], done["total_calls"]);
    assert_eq!(
        completions(&ai).await - calls_before,
        done["total_calls"].as_u64().expect("total"),
        "each part (and a merge, if any) is one call"
    );
    let made = &done["chapters"];
    assert_eq!(made["kind"], "llm", "{made}");
    assert_eq!(made["model"], "smollm2-135m-instruct");
    let list = made["chapters"].as_array().expect("chapters");
    assert!(!list.is_empty());
    assert_eq!(list[0]["start_ms"], 0);
    let mut previous = -1;
    for c in list {
        let start = c["start_ms"].as_i64().expect("start");
        assert!(start > previous, "ordered: {made}");
        assert!(start < 240_000, "in range: {made}");
        assert!(
            c["title"].as_str().is_some_and(|t| !t.trim().is_empty()),
            "titled: {made}"
        );
        previous = start;
    }
    let vtt = get(&app, &format!("{}.vtt", path(&w.public)), None).await;
    assert_eq!(cues(&vtt.text).len(), list.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_a_transcript_gets_its_chapters_when_its_recording_is_built() {
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    lines(
        &app,
        &id,
        &[
            (500, "Welcome to the sourdough stream."),
            (3000, "Knead the dough."),
        ],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = crate::recording::media(dir.path(), 6);
    let out =
        crate::recording::publish_cmd(&format!("http://{}", app.addr), &id, &token, &file, &[])
            .output()
            .expect("onair publish runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nobody asked: the built recording starts them.
    let start = Instant::now();
    let made = loop {
        let res = get(&app, &path(&id), None).await;
        assert_eq!(res.status, 200, "{}", res.text);
        if res.body["chapters"] != Value::Null && res.body["running"] == false {
            break res.body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no chapters after the recording: {}",
            res.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(app.state.db.get_recording(&id).await.expect("db").is_some());
    assert_eq!(made["chapters"]["kind"], "builtin", "{made}");
    assert_eq!(made["chapters"]["chapters"][0]["start_ms"], 0, "{made}");
}
