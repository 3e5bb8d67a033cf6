//! The forwarder against real HTTP servers on 127.0.0.1 standing in for
//! owners, with the owners' names read from a fake lease table.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

use super::*;

#[test]
fn the_default_url_is_the_bound_address_or_the_host_name() {
    assert_eq!(
        default_node_url("127.0.0.1:8080".parse().expect("addr")),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        default_node_url("[::1]:8080".parse().expect("addr")),
        "http://[::1]:8080"
    );
    let any = default_node_url("0.0.0.0:9000".parse().expect("addr"));
    assert!(
        any.starts_with("http://") && any.ends_with(":9000"),
        "{any}"
    );
    assert!(!any.contains("0.0.0.0"), "{any}");
}

/// The lease table: whoever the test says owns every stream.
#[derive(Debug, Default)]
struct Leases(Mutex<Option<Owner>>);

#[async_trait::async_trait]
impl Owners for Leases {
    async fn owner(&self, _stream: &str) -> Result<Option<Owner>, String> {
        Ok(self.0.lock().expect("lock").clone())
    }
}

/// An owner: answers every part with its name, counts the requests and
/// checks the edge names itself.
async fn owner(name: &'static str) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/live/{stream}/{rendition}/{file}",
            get(
                |State((name, count)): State<(&'static str, Arc<AtomicUsize>)>,
                 headers: HeaderMap| async move {
                    assert_eq!(headers[EDGE_HEADER], "edge");
                    count.fetch_add(1, Ordering::SeqCst);
                    name
                },
            ),
        )
        .with_state((name, count.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

fn forwarder(leases: Arc<Leases>) -> Arc<Forwarder> {
    Forwarder::new(
        ForwardConfig {
            node_id: "edge".into(),
            cache_bytes: 1 << 20,
            cache_ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        },
        leases,
        Arc::default(),
    )
}

async fn part(f: &Arc<Forwarder>) -> Result<Fetched, ForwardError> {
    f.get("s1", "720p/4.0.m4s", "", Kind::Part, None).await
}

fn media(body: &str) -> Fetched {
    Fetched::Media(Media::new(Bytes::from(body.to_string())))
}

#[tokio::test]
async fn media_is_kept_per_owner_and_a_dead_owner_is_a_clear_error() {
    let leases = Arc::new(Leases::default());
    let f = forwarder(leases.clone());
    // Nobody owns it: not live, no request.
    assert_eq!(part(&f).await, Err(ForwardError::NotLive("s1".into())));

    let (a_url, a_count) = owner("from A").await;
    *leases.0.lock().expect("lock") = Some(Owner {
        node: "node-a".into(),
        url: a_url,
    });
    // The lease's last answer (nobody) is used for a second.
    tokio::time::sleep(OWNER_FRESH).await;
    assert_eq!(part(&f).await, Ok(media("from A")));
    assert_eq!(part(&f).await, Ok(media("from A")));
    assert_eq!(a_count.load(Ordering::SeqCst), 1, "kept after one request");

    // The stream moves to B (failover) and B uses the same URL: B's bytes,
    // never A's kept ones.
    let (b_url, b_count) = owner("from B").await;
    *leases.0.lock().expect("lock") = Some(Owner {
        node: "node-b".into(),
        url: b_url,
    });
    tokio::time::sleep(OWNER_FRESH).await;
    assert_eq!(part(&f).await, Ok(media("from B")));
    assert_eq!(b_count.load(Ordering::SeqCst), 1);

    // The owner is this node: not forwarded to itself.
    *leases.0.lock().expect("lock") = Some(Owner {
        node: "edge".into(),
        url: "http://127.0.0.1:1".into(),
    });
    tokio::time::sleep(OWNER_FRESH).await;
    assert_eq!(part(&f).await, Err(ForwardError::NotLive("s1".into())));

    // An owner that refuses connections: OwnerUnreachable at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    *leases.0.lock().expect("lock") = Some(Owner {
        node: "node-c".into(),
        url: dead,
    });
    tokio::time::sleep(OWNER_FRESH).await;
    let got = f
        .get("s1", "720p/index.m3u8", "_HLS_msn=4", Kind::Playlist, None)
        .await;
    assert!(
        matches!(&got, Err(ForwardError::OwnerUnreachable { owner, .. }) if owner == "node-c"),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_owner_that_accepts_but_never_answers_is_unreachable_after_the_deadline() {
    // Accepts connections (the kernel's backlog) and never reads them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let leases = Arc::new(Leases::default());
    *leases.0.lock().expect("lock") = Some(Owner {
        node: "node-s".into(),
        url: format!("http://{}", silent.local_addr().expect("addr")),
    });
    let f = Forwarder::new(
        ForwardConfig {
            node_id: "edge".into(),
            cache_bytes: 1 << 20,
            cache_ttl: Duration::from_secs(60),
            timeout: Duration::from_millis(300),
        },
        leases,
        Arc::default(),
    );
    let got = f
        .get("s1", "720p/index.m3u8", "_HLS_msn=9", Kind::Playlist, None)
        .await;
    assert!(
        matches!(&got, Err(ForwardError::OwnerUnreachable { owner, .. }) if owner == "node-s"),
        "{got:?}"
    );
    drop(silent);
}
