//! Transcripts, search and summaries over a real socket: the transcript API
//! and its downloads with the watch rules, search with highlights and
//! visibility, and summaries made by the local AI server (OpenAI and Azure
//! paths, map-reduce over parts), by the extractive fallback, and failing
//! clearly (endpoint down, wrong key, timeout) while keeping the last one.

use std::time::{Duration, Instant};

use onair_server::auth::playback::unix_now;
use onair_server::db::transcripts::TranscriptRow;
use reqwest::Method;
use serde_json::{json, Value};

use crate::accounts::{create_stream, mint};
use onair_server::summary::llm::{LlmConfig, Provider};
use onair_server::summary::SummaryConfig;

use crate::support::{AiServer, TestApp};

/// An OpenAI-compatible model at `url` with `key` (empty: none), as
/// `--llm-url`, `--llm-key` and `--llm-model` make it.
pub(crate) fn llm(url: &str, key: &str, model: &str) -> LlmConfig {
    LlmConfig {
        url: url.trim_end_matches('/').to_string(),
        model: model.to_string(),
        key: (!key.is_empty()).then(|| key.to_string()),
        provider: Provider::OpenAi,
        timeout: Duration::from_secs(120),
    }
}

/// Status, headers and body (JSON, or `Null` and the text in `text`).
pub(crate) struct Res {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Res {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A request as a browser on the same origin would send it.
pub(crate) async fn call(app: &TestApp, method: Method, path: &str, session: Option<&str>) -> Res {
    let mut req = app.http.request(method, app.url(path));
    if let Some(s) = session {
        req = req
            .header("cookie", format!("onair_session={s}"))
            .header("origin", format!("http://{}", app.addr));
    }
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

pub(crate) async fn get(app: &TestApp, path: &str, session: Option<&str>) -> Res {
    call(app, Method::GET, path, session).await
}

pub(crate) async fn lines(app: &TestApp, stream: &str, texts: &[(i64, &str)]) {
    let rows: Vec<TranscriptRow> = texts
        .iter()
        .map(|(start, text)| TranscriptRow {
            stream: stream.into(),
            start_ms: *start,
            end_ms: start + 4000,
            program_ms: None,
            text: (*text).into(),
        })
        .collect();
    app.state.db.insert_transcript(&rows).await.expect("lines");
}

/// An owner with a public and a private stream, and another user.
pub(crate) struct World {
    pub(crate) owner: String,
    pub(crate) other: String,
    pub(crate) public: String,
    pub(crate) private: String,
}

pub(crate) async fn world(app: &TestApp) -> World {
    let (_, owner) = mint(app, "ann", "broadcaster").await;
    let (_, other) = mint(app, "bob", "broadcaster").await;
    let public = create_stream(app, &owner, "Cooking pasta at home", "public").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let private = create_stream(app, &owner, "Secret family recipe", "private").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    World {
        owner,
        other,
        public,
        private,
    }
}

#[tokio::test]
async fn transcripts_read_and_download_with_the_watch_rules() {
    let app = TestApp::start(|_| {}).await;
    let w = world(&app).await;
    lines(
        &app,
        &w.public,
        &[
            (61_500, "Now the water is boiling."),
            (1500, "Hello <and> welcome & enjoy"),
        ],
    )
    .await;
    lines(&app, &w.private, &[(0, "Grandma's secret is broth.")]).await;

    // Anyone may read a public stream's transcript: lines in media order.
    let res = get(
        &app,
        &format!("/api/v1/streams/{}/transcript", w.public),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["title"], "Cooking pasta at home");
    assert_eq!(res.body["state"], "idle");
    assert_eq!(
        res.body["lines"],
        json!([
            {"start_ms": 1500, "end_ms": 5500, "text": "Hello <and> welcome & enjoy"},
            {"start_ms": 61500, "end_ms": 65500, "text": "Now the water is boiling."},
        ])
    );

    // The downloads.
    let vtt = get(
        &app,
        &format!("/api/v1/streams/{}/transcript.vtt", w.public),
        None,
    )
    .await;
    assert_eq!(vtt.status, 200);
    assert_eq!(vtt.header("content-type"), "text/vtt; charset=utf-8");
    assert_eq!(
        vtt.header("content-disposition"),
        "attachment; filename=\"Cooking pasta at home-transcript.vtt\""
    );
    assert_eq!(
        vtt.text,
        "WEBVTT\n\n00:00:01.500 --> 00:00:05.500\nHello &lt;and&gt; welcome &amp; enjoy\n\n\
         00:01:01.500 --> 00:01:05.500\nNow the water is boiling.\n\n"
    );
    let srt = get(
        &app,
        &format!("/api/v1/streams/{}/transcript.srt", w.public),
        None,
    )
    .await;
    assert_eq!(srt.status, 200);
    assert_eq!(
        srt.header("content-type"),
        "application/x-subrip; charset=utf-8"
    );
    assert!(srt
        .header("content-disposition")
        .ends_with("-transcript.srt\""));
    assert_eq!(
        srt.text,
        "1\n00:00:01,500 --> 00:00:05,500\nHello <and> welcome & enjoy\n\n\
         2\n00:01:01,500 --> 00:01:05,500\nNow the water is boiling.\n\n"
    );
    let txt = get(
        &app,
        &format!("/api/v1/streams/{}/transcript.txt", w.public),
        None,
    )
    .await;
    assert_eq!(txt.status, 200);
    assert_eq!(txt.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        txt.text,
        "[0:01] Hello <and> welcome & enjoy\n[1:01] Now the water is boiling.\n"
    );

    // A private stream: 404 to others, open to the owner and to a playback token.
    let path = format!("/api/v1/streams/{}/transcript", w.private);
    assert_eq!(get(&app, &path, None).await.status, 404);
    assert_eq!(get(&app, &path, Some(&w.other)).await.status, 404);
    let own = get(&app, &path, Some(&w.owner)).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["lines"][0]["text"], "Grandma's secret is broth.");
    let (token, _) =
        app.state
            .accounts
            .playback
            .issue(&w.private, Duration::from_secs(600), unix_now());
    let with_token = get(&app, &format!("{path}?token={token}"), None).await;
    assert_eq!(with_token.status, 200, "{}", with_token.text);
    let dl = get(
        &app,
        &format!("/api/v1/streams/{}/transcript.txt?token={token}", w.private),
        None,
    )
    .await;
    assert_eq!(dl.text, "[0:00] Grandma's secret is broth.\n");
    // A token for another stream, or a forged one, opens nothing.
    let (other_token, _) =
        app.state
            .accounts
            .playback
            .issue(&w.public, Duration::from_secs(600), unix_now());
    assert_eq!(
        get(&app, &format!("{path}?token={other_token}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        get(&app, &format!("{path}?token=1.abc"), None).await.status,
        404
    );

    // No lines yet: an empty list, not an error.
    let empty = create_stream(&app, &w.owner, "Quiet stream", "public").await;
    let res = get(
        &app,
        &format!(
            "/api/v1/streams/{}/transcript",
            empty["id"].as_str().expect("id")
        ),
        None,
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["lines"], json!([]));
    assert_eq!(
        get(&app, "/api/v1/streams/nosuch/transcript", None)
            .await
            .status,
        404
    );
    // Deleting a stream deletes its transcript and summary.
    app.state
        .db
        .put_summary(&w.public, "extractive", None, "Hello.")
        .await
        .expect("summary");
    let res = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/streams/{}", w.public),
        Some(&w.owner),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert!(app
        .state
        .db
        .stream_transcript(&w.public)
        .await
        .expect("lines")
        .is_empty());
    assert_eq!(
        app.state.db.get_summary(&w.public).await.expect("summary"),
        None
    );
    assert_eq!(
        get(&app, "/api/v1/search?q=boiling", None).await.body["results"],
        json!([])
    );
}

#[tokio::test]
async fn search_finds_titles_descriptions_and_lines_the_caller_may_see() {
    let app = TestApp::start(|_| {}).await;
    let w = world(&app).await;
    app.state
        .db
        .client()
        .query("UPDATE type::record('stream', $id) SET description = 'Flour, eggs and <b>salt</b> only'")
        .bind(("id", w.public.clone()))
        .await
        .expect("query")
        .check()
        .expect("description");
    lines(
        &app,
        &w.public,
        &[
            (0, "Welcome to the show."),
            (61_000, "Now the water is boiling, add the <pasta>."),
            (70_000, "Let us talk about the weather."),
            (80_000, "The garden looks lovely in spring."),
            (90_000, "Thanks for joining us tonight."),
        ],
    )
    .await;
    lines(
        &app,
        &w.private,
        &[(5000, "Boiling the broth is the secret.")],
    )
    .await;

    // A transcript line: highlighted, escaped, with its moment.
    let res = get(&app, "/api/v1/search?q=boil", None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let hits = res.body["results"].as_array().expect("results");
    assert_eq!(hits.len(), 1, "{}", res.body);
    let hit = &hits[0];
    assert_eq!(hit["stream_id"], w.public.as_str());
    assert_eq!(hit["field"], "transcript");
    assert_eq!(hit["title"], "Cooking pasta at home");
    assert_eq!(hit["owner"], "ann");
    assert_eq!(hit["start_ms"], 61_000);
    assert_eq!(hit["at"], "1:01");
    assert_eq!(hit["url"], format!("/watch/{}?t=61", w.public));
    assert_eq!(
        hit["html"],
        "Now the water is <mark>boiling</mark>, add the &lt;pasta&gt;."
    );
    assert_eq!(
        hit["fragments"],
        json!([
            {"text": "Now the water is ", "mark": false},
            {"text": "boiling", "mark": true},
            {"text": ", add the <pasta>.", "mark": false},
        ])
    );
    assert_eq!(res.body["query"], "boil");

    // Titles and descriptions.
    let res = get(&app, "/api/v1/search?q=pasta", None).await;
    let fields: Vec<&str> = res.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["field"].as_str().unwrap_or(""))
        .collect();
    assert!(fields.contains(&"title"), "{}", res.body);
    assert!(fields.contains(&"transcript"), "{}", res.body);
    let title = res.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|h| h["field"] == "title")
        .expect("title hit");
    assert_eq!(title["html"], "Cooking <mark>pasta</mark> at home");
    assert_eq!(title["url"], format!("/watch/{}", w.public));
    assert_eq!(title["start_ms"], Value::Null);
    let res = get(&app, "/api/v1/search?q=salt", None).await;
    assert_eq!(res.body["results"][0]["field"], "description");
    assert_eq!(
        res.body["results"][0]["html"],
        "Flour, eggs and &lt;b&gt;<mark>salt</mark>&lt;/b&gt; only"
    );

    // The private stream: found by its owner only.
    let anon = get(&app, "/api/v1/search?q=broth", None).await;
    assert_eq!(anon.body["results"], json!([]));
    let bob = get(&app, "/api/v1/search?q=secret", Some(&w.other)).await;
    assert_eq!(bob.body["results"], json!([]), "{}", bob.body);
    let ann = get(&app, "/api/v1/search?q=secret", Some(&w.owner)).await;
    let ids: Vec<&str> = ann.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["stream_id"].as_str().unwrap_or(""))
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|i| *i == w.private),
        "{}",
        ann.body
    );

    // Limits.
    let limited = get(&app, "/api/v1/search?q=the&limit=2", None).await;
    assert_eq!(limited.status, 200);
    assert!(limited.body["results"].as_array().expect("results").len() <= 2);
    for bad in [
        "/api/v1/search".to_string(),
        "/api/v1/search?q=%20%20".to_string(),
        format!("/api/v1/search?q={}", "a".repeat(201)),
        "/api/v1/search?q=pasta&limit=0".to_string(),
        "/api/v1/search?q=pasta&limit=51".to_string(),
        "/api/v1/search?q=pasta&limit=many".to_string(),
    ] {
        let res = get(&app, &bad, None).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text);
        assert_eq!(res.code(), "bad_request", "{bad}");
    }
    assert_eq!(
        get(&app, &format!("/api/v1/search?q={}", "a".repeat(200)), None)
            .await
            .status,
        200
    );
}

/// Polls the summary until it is no longer running.
async fn settle(app: &TestApp, id: &str, session: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let res = get(app, &format!("/api/v1/streams/{id}/summary"), Some(session)).await;
        assert_eq!(res.status, 200, "{}", res.text);
        if res.body["state"] != "running" {
            return res.body;
        }
        assert!(
            start.elapsed() < limit,
            "the summary still runs after {limit:?}: {}",
            res.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post_summary(app: &TestApp, id: &str, session: Option<&str>) -> Res {
    call(
        app,
        Method::POST,
        &format!("/api/v1/streams/{id}/summary"),
        session,
    )
    .await
}

/// The AI server's count of chat completions it answered.
pub(crate) async fn completions(ai: &AiServer) -> u64 {
    let base = ai.url.trim_end_matches("/v1");
    let health: Value = reqwest::get(format!("{base}/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    health["completions"].as_u64().expect("completions")
}

/// A cooking stream's transcript: twelve lines, about 700 characters.
const COOKING: [&str; 12] = [
    "Hello everyone and welcome to the cooking stream.",
    "Today we are making fresh pasta from scratch.",
    "You need flour, eggs and a pinch of salt.",
    "Make a well in the flour and crack the eggs into it.",
    "Mix with a fork, then knead the dough for ten minutes.",
    "Let the dough rest for half an hour under a towel.",
    "Roll the dough thin and cut it into ribbons.",
    "Bring a big pot of salted water to the boil.",
    "Cook the fresh pasta for two minutes only.",
    "Toss it with butter and grated cheese.",
    "That is all for today, the pasta is ready.",
    "Thanks for watching and see you next week.",
];

async fn cooking(app: &TestApp, id: &str) {
    let texts: Vec<(i64, &str)> = COOKING
        .iter()
        .enumerate()
        .map(|(i, t)| (i as i64 * 5000, *t))
        .collect();
    lines(app, id, &texts).await;
}

#[tokio::test]
async fn summaries_with_the_local_model_openai_and_azure() {
    let ai = AiServer::start();
    let app = TestApp::start(|c| {
        c.summary = SummaryConfig {
            llm: Some(llm(&ai.url, &ai.key, "smollm2-135m-instruct")),
            context_chars: 200,
        }
    })
    .await;
    let w = world(&app).await;
    cooking(&app, &w.public).await;

    // Only the owner (or an admin) may make or read it.
    let anon = post_summary(&app, &w.public, None).await;
    assert_eq!((anon.status, anon.code()), (401, "unauthenticated"));
    let other = post_summary(&app, &w.public, Some(&w.other)).await;
    assert_eq!((other.status, other.code()), (403, "forbidden"));
    assert_eq!(
        get(
            &app,
            &format!("/api/v1/streams/{}/summary", w.public),
            Some(&w.other)
        )
        .await
        .status,
        403
    );
    let before = get(
        &app,
        &format!("/api/v1/streams/{}/summary", w.public),
        Some(&w.owner),
    )
    .await;
    assert_eq!(before.body["state"], "idle");
    assert_eq!(before.body["llm"], true);
    assert_eq!(before.body["model"], "smollm2-135m-instruct");
    assert_eq!(before.body["transcript_lines"], 12);
    assert_eq!(before.body["summary"], Value::Null);

    // 554 characters at 200 per call: at least three parts, then one call to combine.
    let calls_before = completions(&ai).await;
    let started = post_summary(&app, &w.public, Some(&w.owner)).await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["state"], "running");
    let total = started.body["total_parts"].as_u64().expect("total");
    assert!(total >= 4, "{}", started.body);
    // One job at a time.
    let again = post_summary(&app, &w.public, Some(&w.owner)).await;
    assert_eq!((again.status, again.code()), (409, "summary_running"));

    let done = settle(&app, &w.public, &w.owner, Duration::from_secs(180)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["done_parts"], done["total_parts"]);
    let total = done["total_parts"].as_u64().expect("total");
    let first = done["summary"].clone();
    assert_eq!(first["kind"], "llm");
    assert_eq!(first["model"], "smollm2-135m-instruct");
    assert_eq!(first["label"], "AI summary (smollm2-135m-instruct)");
    assert!(
        first["text"].as_str().is_some_and(|t| !t.trim().is_empty()),
        "{first}"
    );
    assert_eq!(
        completions(&ai).await - calls_before,
        total,
        "each part and the combination are one call each"
    );

    // Regenerate: a new summary, made later.
    let started = post_summary(&app, &w.public, Some(&w.owner)).await;
    assert_eq!(started.status, 202);
    // The previous summary stays visible while the new one is made.
    assert_eq!(started.body["summary"]["created_at"], first["created_at"]);
    let done = settle(&app, &w.public, &w.owner, Duration::from_secs(180)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(
        done["summary"]["created_at"].as_str() > first["created_at"].as_str(),
        "{} then {}",
        first["created_at"],
        done["summary"]["created_at"]
    );

    // A stream without a transcript: nothing to summarise.
    let quiet = create_stream(&app, &w.owner, "Quiet", "public").await;
    let res = post_summary(&app, quiet["id"].as_str().expect("id"), Some(&w.owner)).await;
    assert_eq!((res.status, res.code()), (409, "no_transcript"));

    // The Azure OpenAI path against the same server (it answers only with
    // ?api-version= and under /openai/deployments/{deployment}/).
    let base = ai.url.trim_end_matches("/v1").to_string();
    let azure = TestApp::start(|c| {
        c.summary.llm = Some(LlmConfig {
            provider: Provider::Azure {
                deployment: "smollm2".into(),
                api_version: "2024-10-21".into(),
            },
            ..llm(&base, &ai.key, "smollm2-azure")
        })
    })
    .await;
    let (_, owner) = mint(&azure, "cat", "broadcaster").await;
    let id = create_stream(&azure, &owner, "Azure pasta", "public").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    cooking(&azure, &id).await;
    let calls_before = completions(&ai).await;
    assert_eq!(post_summary(&azure, &id, Some(&owner)).await.status, 202);
    let done = settle(&azure, &id, &owner, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["summary"]["kind"], "llm");
    assert_eq!(done["summary"]["model"], "smollm2-azure");
    assert_eq!(
        completions(&ai).await - calls_before,
        1,
        "one part, one call"
    );

    // A wrong key: a clear error, and the previous summary is kept.
    let wrong =
        TestApp::start(|c| c.summary.llm = Some(llm(&ai.url, "not-the-key", "gpt-4o-mini"))).await;
    let (_, owner) = mint(&wrong, "dan", "broadcaster").await;
    let id = create_stream(&wrong, &owner, "Wrong key", "public").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    cooking(&wrong, &id).await;
    let kept = wrong
        .state
        .db
        .put_summary(&id, "extractive", None, "An earlier summary.")
        .await
        .expect("earlier summary");
    assert_eq!(post_summary(&wrong, &id, Some(&owner)).await.status, 202);
    let failed = settle(&wrong, &id, &owner, Duration::from_secs(60)).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.contains("refused the API key") && error.contains("401"),
        "{error}"
    );
    assert_eq!(failed["summary"]["text"], "An earlier summary.");
    assert_eq!(failed["summary"]["created_at"], kept.created_at.as_str());
}

#[tokio::test]
async fn without_a_model_summaries_are_extractive_and_labelled() {
    let app = TestApp::start(|_| {}).await;
    let w = world(&app).await;
    cooking(&app, &w.public).await;
    let before = get(
        &app,
        &format!("/api/v1/streams/{}/summary", w.public),
        Some(&w.owner),
    )
    .await;
    assert_eq!(before.body["llm"], false);
    assert_eq!(before.body["model"], Value::Null);
    let res = post_summary(&app, &w.public, Some(&w.owner)).await;
    assert_eq!(res.status, 202, "{}", res.text);
    let done = settle(&app, &w.public, &w.owner, Duration::from_secs(30)).await;
    assert_eq!(done["state"], "done", "{done}");
    let s = &done["summary"];
    assert_eq!(s["kind"], "extractive");
    assert_eq!(s["model"], Value::Null);
    assert_eq!(s["label"], "Extractive summary (no AI model configured)");
    // Twelve sentences: the three whose words come up most, in order.
    assert_eq!(
        s["text"],
        "Today we are making fresh pasta from scratch. \
         Mix with a fork, then knead the dough for ten minutes. \
         Cook the fresh pasta for two minutes only."
    );
}

#[tokio::test]
async fn an_unreachable_or_silent_endpoint_fails_clearly_and_keeps_the_summary() {
    // Nothing listens on this port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    // This one accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    for (url, timeout, expected) in [
        (
            format!("http://127.0.0.1:{closed}/v1"),
            120,
            "could not connect to the AI endpoint",
        ),
        (
            format!("http://127.0.0.1:{silent_port}/v1"),
            1,
            "did not answer within 1 s",
        ),
    ] {
        let app = TestApp::start(|c| {
            c.summary.llm = Some(LlmConfig {
                key: None,
                timeout: Duration::from_secs(timeout),
                ..llm(&url, "", "gpt-4o-mini")
            })
        })
        .await;
        let w = world(&app).await;
        cooking(&app, &w.public).await;
        app.state
            .db
            .put_summary(&w.public, "llm", Some("earlier-model"), "Earlier words.")
            .await
            .expect("earlier summary");
        assert_eq!(
            post_summary(&app, &w.public, Some(&w.owner)).await.status,
            202
        );
        let failed = settle(&app, &w.public, &w.owner, Duration::from_secs(60)).await;
        assert_eq!(failed["state"], "failed", "{failed}");
        assert!(
            failed["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected)),
            "{failed}"
        );
        assert_eq!(failed["summary"]["text"], "Earlier words.");
        assert_eq!(failed["summary"]["model"], "earlier-model");
        // Trying again is allowed after a failure.
        assert_eq!(
            post_summary(&app, &w.public, Some(&w.owner)).await.status,
            202
        );
        settle(&app, &w.public, &w.owner, Duration::from_secs(60)).await;
    }
    held.abort();
}
