//! Two Onair nodes on one NATS (JetStream) and one SurrealDB server, all on
//! 127.0.0.1 and started here: rooms across nodes (same events, same order,
//! same ids), a resume on the other node, viewer counts summed with one
//! viewer counted once, a ban that holds on both, stream ownership, and NATS
//! going away and coming back.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use app::protocol::events::{
    Caption, ChatMessage, ClientMessage, ClientRole, Envelope, ServerEvent,
};
use app::protocol::StreamState;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{create_stream, mint};
use crate::events::{hello, next, open, send, welcome, Ws};
use crate::support::{free_port_pair, remote_db, SurrealServer, TestApp, SURREAL_PASSWORD};

/// Debian's `nats-server` (the Makefile's APT_TEST), or `ONAIR_NATS_SERVER`.
fn nats_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ONAIR_NATS_SERVER") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = PathBuf::from(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    panic!("nats-server is missing: apt-get install nats-server (make test does)");
}

/// A NATS server with JetStream on 127.0.0.1, its data in a temp dir.
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let mut s = NatsServer {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port_pair(),
        };
        s.spawn();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("log");
        let child = Command::new(nats_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path().join("js"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start: {}",
                std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (`kill`, SIGTERM); its JetStream data stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node of the cluster: the shared database, this NATS, its own name.
pub async fn node(surreal: &SurrealServer, nats: &NatsServer, name: &str) -> TestApp {
    let db = remote_db(&surreal.url, SURREAL_PASSWORD);
    let nats_url = nats.url();
    TestApp::start(|c| {
        c.db = db;
        c.cluster.nats_url = Some(nats_url);
        c.cluster.node_id = name.into();
    })
    .await
}

/// The next event that matches (numbered or not).
pub(crate) async fn until(ws: &mut Ws, mut pred: impl FnMut(&ServerEvent) -> bool) -> Envelope {
    loop {
        let e = next(ws).await.unwrap_or_else(|c| panic!("closed: {c:?}"));
        if pred(&e.event) {
            return e;
        }
    }
}

/// The next chat message, with its event id (none if it was served by one
/// node alone).
pub(crate) async fn chat(ws: &mut Ws) -> (Option<u64>, ChatMessage) {
    let e = until(ws, |e| matches!(e, ServerEvent::Chat { .. })).await;
    match e.event {
        ServerEvent::Chat { message } => (e.id, message),
        _ => unreachable!(),
    }
}

pub(crate) fn say(text: &str) -> ClientMessage {
    ClientMessage::Chat { text: text.into() }
}

/// After NATS came back: posts on `from` (one a second, the chat rate
/// limit's refill) until one is numbered by the bus, then checks `to`, a
/// viewer on the other node, gets it with the same id.
pub(crate) async fn chat_crosses_again(from: &mut Ws, to: &mut Ws) {
    let mut n = 0;
    let crossed = loop {
        n += 1;
        assert!(n <= 20, "chat never crossed nodes again");
        let text = format!("back {n}");
        send(from, &say(&text)).await;
        let (id_from, _) = chat(from).await;
        if id_from.is_none() {
            // The link was not fully back yet: served on this node alone.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // The other node gets it (after any earlier attempts, which it never saw).
        let got = until(
            to,
            |e| matches!(e, ServerEvent::Chat { message } if message.text == text),
        )
        .await;
        break (id_from, got.id);
    };
    assert_eq!(crossed.0, crossed.1, "the same id on both nodes");
}

/// Polls `f` every 100 ms until it holds, for at most `secs` seconds.
pub(crate) async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn readiness(app: &TestApp) -> String {
    let res = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let body: serde_json::Value = res.json().await.expect("json");
    body["status"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_span_two_nodes_on_nats_and_survive_its_restart() {
    let mut nats = NatsServer::start();
    let surreal = SurrealServer::start();
    let a = node(&surreal, &nats, "node-a").await;
    let b = node(&surreal, &nats, "node-b").await;
    eventually(20, "A ready", || async { readiness(&a).await == "ready" }).await;
    eventually(20, "B ready", || async { readiness(&b).await == "ready" }).await;

    let (_, owner) = mint(&a, "owner", "broadcaster").await;
    let (_, ann) = mint(&a, "ann", "viewer").await;
    let (_, bob) = mint(&a, "bob", "viewer").await;
    let (_, carl) = mint(&a, "carl", "viewer").await;
    let stream = create_stream(&a, &owner, "Across nodes", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();

    // ann on A, bob on B.
    let mut ann_a = open(&a, &id, Some(&ann), None).await;
    send(&mut ann_a, &hello(ClientRole::Viewer, Some("ann-1"), None)).await;
    welcome(&mut ann_a).await;
    let mut bob_b = open(&b, &id, Some(&bob), None).await;
    send(&mut bob_b, &hello(ClientRole::Viewer, Some("bob-1"), None)).await;
    welcome(&mut bob_b).await;

    // 1. Chat from either node reaches both, in one order, with one set of ids.
    send(&mut ann_a, &say("one")).await;
    send(&mut bob_b, &say("two")).await;
    send(&mut ann_a, &say("three")).await;
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..3 {
        let (id_a, m) = chat(&mut ann_a).await;
        seen_a.push((id_a.expect("numbered"), m.text));
        let (id_b, m) = chat(&mut bob_b).await;
        seen_b.push((id_b.expect("numbered"), m.text));
    }
    assert_eq!(seen_a, seen_b, "same events, same order, same ids");
    let texts: Vec<&str> = seen_a.iter().map(|(_, t)| t.as_str()).collect();
    assert!(texts.contains(&"one") && texts.contains(&"two") && texts.contains(&"three"));
    assert!(
        texts.iter().position(|t| *t == "one") < texts.iter().position(|t| *t == "three"),
        "one node's messages keep their order"
    );
    assert!(seen_a.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");

    // 2. Counts are summed across nodes, and one viewer on two nodes (ann's
    // second tab, on B) counts once.
    let mut carl_a = open(&a, &id, Some(&carl), None).await;
    send(
        &mut carl_a,
        &hello(ClientRole::Viewer, Some("carl-1"), None),
    )
    .await;
    let ServerEvent::Welcome {
        last_id: last,
        history,
        ..
    } = welcome(&mut carl_a).await
    else {
        unreachable!()
    };
    assert_eq!(history.len(), 3, "the history: one, two, three");
    assert_eq!(
        last, seen_a[2].0,
        "the welcome's last id is the newest event"
    );
    let mut ann_b = open(&b, &id, Some(&ann), None).await;
    send(&mut ann_b, &hello(ClientRole::Viewer, Some("ann-2"), None)).await;
    welcome(&mut ann_b).await;
    // Once each node has the other's keys (ann and carl from A, bob and
    // ann from B), both count three.
    eventually(
        20,
        "each node holds the other's two viewer keys",
        || async {
            a.state.rooms.bus().other_viewers(&id).0.len() == 2
                && b.state.rooms.bus().other_viewers(&id).0.len() == 2
        },
    )
    .await;
    assert_eq!(a.state.rooms.viewer_count(&id), 3);
    assert_eq!(b.state.rooms.viewer_count(&id), 3);
    // And the viewers are told so.
    until(&mut bob_b, |e| {
        matches!(e, ServerEvent::Viewers { count: 3 })
    })
    .await;
    until(&mut ann_a, |e| {
        matches!(e, ServerEvent::Viewers { count: 3 })
    })
    .await;
    drop(ann_b);

    // 3. carl leaves A after event `last`, misses two messages, and resumes
    // on B with `last_id`: exactly the two missed, then what follows.
    drop(carl_a);
    send(&mut ann_a, &say("four")).await;
    send(&mut bob_b, &say("five")).await;
    let four_five: Vec<(u64, String)> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let (i, m) = chat(&mut ann_a).await;
            v.push((i.expect("numbered"), m.text));
        }
        v
    };
    let mut carl_b = open(&b, &id, Some(&carl), None).await;
    send(
        &mut carl_b,
        &hello(ClientRole::Viewer, Some("carl-1"), Some(last)),
    )
    .await;
    match welcome(&mut carl_b).await {
        ServerEvent::Welcome { history, .. } => {
            assert!(history.is_empty(), "a complete resume sends no history")
        }
        _ => unreachable!(),
    }
    send(&mut bob_b, &say("six")).await;
    let mut resumed = Vec::new();
    loop {
        let e = next(&mut carl_b).await.expect("open");
        assert!(
            !matches!(e.event, ServerEvent::Resync { .. }),
            "the history was complete: no resync"
        );
        if let ServerEvent::Chat { message } = e.event {
            let done = message.text == "six";
            resumed.push((e.id.expect("numbered"), message.text));
            if done {
                break;
            }
        }
    }
    let six = chat(&mut ann_a).await;
    // Drain bob's copies of four, five and six.
    for _ in 0..3 {
        chat(&mut bob_b).await;
    }
    let mut expected = four_five.clone();
    expected.push((six.0.expect("numbered"), "six".into()));
    assert_eq!(
        resumed, expected,
        "exactly the missed events, no gap, no duplicate"
    );

    // 4. A ban on A (by the owner's studio there) holds on B.
    let mut studio = open(&a, &id, Some(&owner), None).await;
    send(&mut studio, &hello(ClientRole::Studio, None, None)).await;
    welcome(&mut studio).await;
    send(
        &mut studio,
        &ClientMessage::Ban {
            username: "bob".into(),
        },
    )
    .await;
    until(&mut bob_b, |e| matches!(e, ServerEvent::Moderation { .. })).await;
    send(&mut bob_b, &say("still here?")).await;
    match until(&mut bob_b, |e| matches!(e, ServerEvent::Error { .. }))
        .await
        .event
    {
        ServerEvent::Error { code, .. } => assert_eq!(code, "banned"),
        _ => unreachable!(),
    }

    // 5. Stream ownership: A takes the publisher, B refuses a second one
    // as one node refuses a second publisher; B's viewers see it go live.
    let now = onair_server::clock::now_ms();
    let (publisher, _, is_new) = a
        .state
        .ingest
        .attach_owned(&id, now, None)
        .await
        .expect("A takes the stream");
    assert!(is_new);
    let refused = b.state.ingest.attach_owned(&id, now, None).await;
    assert!(
        matches!(
            refused,
            Err(onair_server::ingest::AttachError::AlreadyPublishing)
        ),
        "{refused:?}"
    );
    a.state.ingest.set_state(&id, StreamState::Live).await;
    until(&mut carl_b, |e| {
        matches!(
            e,
            ServerEvent::State {
                state: StreamState::Live
            }
        )
    })
    .await;
    // A publisher's socket on B (the studio's protocol) is refused as a
    // second publisher on one node is: 4009 already_publishing.
    let token = stream["ingest_token"].as_str().expect("ingest token");
    let mut second = crate::ingest::connect(&b, &id, Some(token)).await;
    let ingest_hello = app::protocol::ingest::ClientMessage::Hello {
        version: 1,
        token: None,
        mime_type: "video/x-matroska;codecs=avc1,opus".into(),
        capture_start_ms: now,
        resume_after: None,
        new_period: false,
    };
    second
        .send(Message::Text(
            serde_json::to_string(&ingest_hello).expect("json").into(),
        ))
        .await
        .expect("hello");
    let (code, reason) = crate::ingest::next(&mut second).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4009, "already_publishing"));

    // Captions made on the owner's node reach B's viewers.
    a.state.rooms.publish_caption(
        &id,
        Caption {
            start_ms: now,
            end_ms: now + 2000,
            text: "hello from node A".into(),
        },
    );
    let e = until(&mut carl_b, |e| matches!(e, ServerEvent::Caption(_))).await;
    assert!(e.id.is_some(), "captions are numbered room events");
    assert!(matches!(e.event, ServerEvent::Caption(c) if c.text == "hello from node A"));

    // 6. NATS goes away: no crash, each node serves its own viewers, and
    // /readyz says degraded.
    nats.stop();
    eventually(20, "A reports degraded", || async {
        readiness(&a).await == "degraded"
    })
    .await;
    eventually(20, "B reports degraded", || async {
        readiness(&b).await == "degraded"
    })
    .await;
    send(&mut ann_a, &say("alone on A")).await;
    let (i, m) = chat(&mut ann_a).await;
    assert_eq!(
        (i, m.text.as_str()),
        (None, "alone on A"),
        "served locally, unnumbered"
    );
    send(&mut carl_b, &say("alone on B")).await;
    let (i, m) = chat(&mut carl_b).await;
    assert_eq!((i, m.text.as_str()), (None, "alone on B"));

    // It comes back on the same port and data: ready again, and chat
    // crosses nodes again (numbered, the same id on both).
    nats.restart();
    eventually(30, "A ready again", || async {
        readiness(&a).await == "ready"
    })
    .await;
    eventually(30, "B ready again", || async {
        readiness(&b).await == "ready"
    })
    .await;
    chat_crosses_again(&mut ann_a, &mut carl_b).await;
    drop(publisher);
}

/// A measurement, not a check (`--ignored`): how long an event made on
/// node A takes to reach a viewer's socket on node B, through NATS. 500
/// caption events (the chat path's bus append, without the per-user rate
/// limit), one every 5 ms; prints p50, p99 and max.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement; run it by name with --ignored"]
async fn measure_event_delivery_across_nodes() {
    let nats = NatsServer::start();
    let surreal = SurrealServer::start();
    let a = node(&surreal, &nats, "node-a").await;
    let b = node(&surreal, &nats, "node-b").await;
    let (_, owner) = mint(&a, "owner", "broadcaster").await;
    let stream = create_stream(&a, &owner, "Latency", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let mut viewer = open(&b, &id, None, None).await;
    send(
        &mut viewer,
        &hello(ClientRole::Viewer, Some("viewer-1"), None),
    )
    .await;
    welcome(&mut viewer).await;
    // The room must be open on A too for a caption to be posted there.
    let mut local = open(&a, &id, None, None).await;
    send(
        &mut local,
        &hello(ClientRole::Viewer, Some("viewer-2"), None),
    )
    .await;
    welcome(&mut local).await;
    const N: usize = 500;
    let start = std::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut got = Vec::with_capacity(N);
        while got.len() < N {
            let e = until(&mut viewer, |e| matches!(e, ServerEvent::Caption(_))).await;
            if let ServerEvent::Caption(c) = e.event {
                got.push((c.start_ms, start.elapsed()));
            }
        }
        got
    });
    let mut sent = Vec::with_capacity(N);
    for n in 0..N {
        sent.push(start.elapsed());
        a.state.rooms.publish_caption(
            &id,
            Caption {
                start_ms: n as i64,
                end_ms: n as i64,
                text: String::new(),
            },
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = reader.await.expect("reader");
    let mut lat: Vec<f64> = got
        .iter()
        .map(|(n, at)| (*at - sent[*n as usize]).as_secs_f64() * 1000.0)
        .collect();
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "in order, none twice"
    );
    lat.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "event A -> viewer on B over NATS: {N} events, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_lapses_when_its_owner_dies_and_is_free_once_released() {
    use onair_server::cluster::leases::{Holder, LeaseError, NatsLeases, LEASES_BUCKET};
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client.clone());
    let ttl = Duration::from_secs(2);
    let a_url = std::sync::Arc::new(std::sync::OnceLock::from("http://127.0.0.1:1".to_string()));
    let a = NatsLeases::new(js.clone(), client.clone(), "node-a".into(), ttl, a_url);
    let b = NatsLeases::new(
        js.clone(),
        client.clone(),
        "node-b".into(),
        ttl,
        Default::default(),
    );

    let held = a.claim("s1").await.expect("A takes the stream");
    match b.claim("s1").await {
        Err(LeaseError::Taken(owner)) => assert_eq!(owner, "node-a"),
        other => panic!("B must be refused: {other:?}"),
    }
    // The lease names its holder and where to reach it.
    let holder = b.owner("s1").await.expect("read").expect("held");
    assert_eq!(
        (holder.node.as_str(), holder.url.as_str()),
        ("node-a", "http://127.0.0.1:1")
    );
    // A renews it: its revision moves on while A holds it.
    let kv = js.get_key_value(LEASES_BUCKET).await.expect("bucket");
    let first = kv.entry("s1").await.expect("entry").expect("held").revision;
    eventually(20, "the lease is renewed", || async {
        kv.entry("s1")
            .await
            .ok()
            .flatten()
            .is_some_and(|e| e.revision > first && Holder::parse(&e.value).node == "node-a")
    })
    .await;
    // A dies (its renewal stops, nothing is released): the lease lapses
    // and B can take the stream.
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        if let Ok(lease) = b.claim("s1").await {
            break lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never took a dead owner's stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // B releases it: A may take it at once (well within a time to live).
    taken.release();
    eventually(30, "A takes a released stream", || {
        let a = a.clone();
        async move { a.claim("s1").await.is_ok() }
    })
    .await;
}
