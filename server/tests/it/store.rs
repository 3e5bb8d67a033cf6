//! One suite for every object store implementation, run against the disk store
//! and against S3 on a real SeaweedFS server.

use std::sync::Arc;

use bytes::Bytes;
use onair_server::store::{self, ByteRange, ObjectKey, ObjectStore, StoreError};
use onair_server::store::{S3Config, StoreConfig};

use crate::support::{Weed, S3_ACCESS_KEY, S3_SECRET_KEY};

const PART: usize = 5 * 1024 * 1024;

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).expect("valid key")
}

/// A deterministic, non-repeating byte pattern so misplaced bytes show.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

async fn suite(store: &dyn ObjectStore) {
    store.check().await.expect("store is ready");

    // put / get / overwrite
    let k = key("streams/s1/720p/1.m4s");
    store
        .put(&k, Bytes::from_static(b"first"))
        .await
        .expect("put");
    assert_eq!(&store.get(&k).await.expect("get")[..], b"first");
    let body = pattern(1000, 1);
    store
        .put(&k, Bytes::from(body.clone()))
        .await
        .expect("overwrite");
    assert_eq!(store.get(&k).await.expect("get").to_vec(), body);
    assert_eq!(store.head(&k).await.expect("head").size, 1000);

    // ranges
    let r = store
        .get_range(&k, ByteRange::Inclusive(10, 19))
        .await
        .expect("range");
    assert_eq!((r.first, r.last, r.total), (10, 19, 1000));
    assert_eq!(r.bytes.to_vec(), body[10..20].to_vec());
    let r = store
        .get_range(&k, ByteRange::From(990))
        .await
        .expect("open range");
    assert_eq!(r.bytes.to_vec(), body[990..].to_vec());
    let r = store
        .get_range(&k, ByteRange::Suffix(7))
        .await
        .expect("suffix range");
    assert_eq!((r.first, r.last), (993, 999));
    assert_eq!(r.bytes.to_vec(), body[993..].to_vec());
    let r = store
        .get_range(&k, ByteRange::Inclusive(995, 5000))
        .await
        .expect("clamped range");
    assert_eq!(r.bytes.to_vec(), body[995..].to_vec());
    assert!(matches!(
        store.get_range(&k, ByteRange::From(1000)).await,
        Err(StoreError::InvalidRange { size: 1000 })
    ));

    // missing objects
    let missing = key("streams/s1/720p/404.m4s");
    assert!(matches!(
        store.get(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.head(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_range(&missing, ByteRange::From(0)).await,
        Err(StoreError::NotFound(_))
    ));

    // list by prefix, sorted, with sizes; sibling prefixes do not leak in
    store
        .put(&key("streams/s1/720p/2.m4s"), Bytes::from_static(b"22"))
        .await
        .expect("put");
    store
        .put(&key("streams/s1/init.mp4"), Bytes::from_static(b"init"))
        .await
        .expect("put");
    store
        .put(&key("streams/s10/720p/1.m4s"), Bytes::from_static(b"x"))
        .await
        .expect("put");
    let listed: Vec<(String, u64)> = store
        .list("streams/s1/")
        .await
        .expect("list")
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("streams/s1/720p/1.m4s".to_string(), 1000),
            ("streams/s1/720p/2.m4s".to_string(), 2),
            ("streams/s1/init.mp4".to_string(), 4),
        ]
    );
    let partial: Vec<String> = store
        .list("streams/s1")
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        partial.len(),
        4,
        "a prefix that is not a directory matches s1 and s10: {partial:?}"
    );
    assert!(store
        .list("nothing/here/")
        .await
        .expect("empty list")
        .is_empty());

    // delete, and deleting again is fine
    store.delete(&k).await.expect("delete");
    assert!(matches!(store.get(&k).await, Err(StoreError::NotFound(_))));
    store.delete(&k).await.expect("delete is idempotent");

    // files: small, and large enough for several multipart parts on S3
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("small.bin");
    std::fs::write(&small, pattern(4096, 2)).expect("write");
    let sk = key("streams/s1/thumb.jpg");
    assert_eq!(store.put_file(&sk, &small).await.expect("put_file"), 4096);
    assert_eq!(
        store.get(&sk).await.expect("get").to_vec(),
        pattern(4096, 2)
    );

    let big_len = 2 * PART + 123_457;
    let big = dir.path().join("big.mp4");
    let big_body = pattern(big_len, 3);
    std::fs::write(&big, &big_body).expect("write");
    let bk = key("streams/s1/recording.mp4");
    assert_eq!(
        store.put_file(&bk, &big).await.expect("put_file large"),
        big_len as u64
    );
    assert_eq!(store.head(&bk).await.expect("head").size, big_len as u64);
    let got = store.get(&bk).await.expect("get large");
    assert!(
        got.to_vec() == big_body,
        "large object differs after upload"
    );
    let tail = store
        .get_range(&bk, ByteRange::Suffix(10))
        .await
        .expect("tail");
    assert_eq!(tail.bytes.to_vec(), big_body[big_len - 10..].to_vec());

    // a large in-memory body takes the same multipart path
    let mk = key("streams/s1/big-bytes.bin");
    let mem_body = pattern(PART + 10, 4);
    store
        .put(&mk, Bytes::from(mem_body.clone()))
        .await
        .expect("put large bytes");
    assert!(store.get(&mk).await.expect("get").to_vec() == mem_body);

    // a missing source file is an I/O error, not a panic
    let err = store
        .put_file(&key("x/y"), &dir.path().join("absent"))
        .await;
    assert!(matches!(err, Err(StoreError::Io { .. })), "{err:?}");
}

#[tokio::test]
async fn disk_store_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::open(&StoreConfig::Disk(dir.path().join("store")))
        .await
        .expect("open");
    suite(store.as_ref()).await;
    // no temporary files are left behind
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("store/.tmp"))
        .expect("tmp dir")
        .collect();
    assert!(tmp.is_empty(), "leftover temp files: {tmp:?}");
}

fn s3_config(weed: &Weed, bucket: &str, prefix: &str, secret: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(weed.endpoint.clone()),
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: S3_ACCESS_KEY.into(),
        secret_access_key: secret.into(),
        part_size: PART,
    }
}

#[tokio::test]
async fn s3_store_passes_the_suite_against_seaweedfs() {
    let weed = Weed::start();
    weed.create_bucket("media").await;
    let store: Arc<dyn ObjectStore> = store::open(&StoreConfig::S3(s3_config(
        &weed,
        "media",
        "tenant/a",
        S3_SECRET_KEY,
    )))
    .await
    .expect("open");
    assert_eq!(store.describe(), "s3://media/tenant/a");
    suite(store.as_ref()).await;

    // The prefix really namespaces the keys in the bucket.
    let raw = weed.client();
    let head = raw
        .head_object()
        .bucket("media")
        .key("tenant/a/streams/s1/recording.mp4")
        .send()
        .await
        .expect("object under the prefix");
    // A multipart upload's ETag is "<md5 of part md5s>-<number of parts>".
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(
        etag.ends_with("-3"),
        "expected a 3-part multipart upload, ETag {etag}"
    );
}

#[tokio::test]
async fn s3_store_reports_a_wrong_secret_and_a_missing_bucket() {
    let weed = Weed::start();
    weed.create_bucket("media").await;

    let wrong = store::open(&StoreConfig::S3(s3_config(
        &weed,
        "media",
        "",
        "not-the-secret",
    )))
    .await
    .expect("open");
    let err = wrong
        .put(&key("a/b"), Bytes::from_static(b"x"))
        .await
        .expect_err("wrong secret must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("SignatureDoesNotMatch")
            || msg.contains("AccessDenied")
            || msg.contains("403"),
        "{msg}"
    );
    assert!(wrong.check().await.is_err());

    let nobucket = store::open(&StoreConfig::S3(s3_config(
        &weed,
        "no-such-bucket",
        "",
        S3_SECRET_KEY,
    )))
    .await
    .expect("open");
    assert!(
        nobucket.check().await.is_err(),
        "a missing bucket is not ready"
    );
}

mod upload_queue {
    use std::time::Duration;

    use bytes::Bytes;
    use onair_server::store::uploader::{Uploader, UploaderConfig};
    use onair_server::store::StoreConfig;
    use std::sync::Arc;

    use onair_server::store::{self, ObjectKey, ObjectStore};

    use super::{pattern, s3_config};
    use crate::support::{Weed, S3_SECRET_KEY};

    fn cfg(dir: &std::path::Path) -> UploaderConfig {
        UploaderConfig {
            attempts: 2,
            backoff: Duration::from_millis(50),
            drain_every: Duration::from_millis(200),
            ..UploaderConfig::new(dir.to_path_buf())
        }
    }

    /// A fresh SeaweedFS with a `media` bucket, the S3 store on it, and a temp dir for the spill.
    async fn s3_with_spill_dir() -> (Weed, Arc<dyn ObjectStore>, tempfile::TempDir) {
        let weed = Weed::start();
        weed.create_bucket("media").await;
        let store = store::open(&StoreConfig::S3(s3_config(
            &weed,
            "media",
            "",
            S3_SECRET_KEY,
        )))
        .await
        .expect("open");
        (weed, store, tempfile::tempdir().expect("tempdir"))
    }

    fn spilled(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    /// Waits up to 60 s: long enough for a request on a connection that died
    /// with the server to hit the S3 client's 10 s read timeout twice.
    async fn wait_for(mut check: impl FnMut() -> bool, what: &str) {
        for _ in 0..600 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_spill_while_s3_is_down_and_nothing_is_lost() {
        let _spill = crate::support::spill_metrics_lock().await;
        let (mut weed, store, dir) = s3_with_spill_dir().await;
        let spill = dir.path().join("spill");
        let uploader = Uploader::start(store.clone(), cfg(&spill))
            .await
            .expect("start");
        let key = |i: usize| ObjectKey::new(format!("streams/s/720p/{i}.m4s")).expect("key");

        for i in 0..3 {
            uploader.enqueue(key(i), Bytes::from(pattern(10_000, i as u32)));
        }
        assert!(
            uploader.drained(Duration::from_secs(20)).await,
            "uploaded while S3 is up"
        );

        weed.stop();
        for i in 3..8 {
            uploader.enqueue(key(i), Bytes::from(pattern(10_000, i as u32)));
        }
        wait_for(|| spilled(&spill) == 5, "five objects spilled to disk").await;
        assert_eq!(uploader.pending(), 5);

        weed.restart();
        assert!(
            uploader.drained(Duration::from_secs(30)).await,
            "the spill drained after S3 came back"
        );
        assert_eq!(spilled(&spill), 0);
        for i in 0..8 {
            let got = store.get(&key(i)).await.expect("every object is in S3");
            assert!(
                got.to_vec() == pattern(10_000, i as u32),
                "object {i} intact"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spill_left_by_a_previous_run_is_uploaded_on_start() {
        let _spill = crate::support::spill_metrics_lock().await;
        let (mut weed, store, dir) = s3_with_spill_dir().await;
        let spill = dir.path().join("spill");
        let key = ObjectKey::new("streams/s/init.mp4").expect("key");
        {
            weed.stop();
            let uploader = Uploader::start(store.clone(), cfg(&spill))
                .await
                .expect("start");
            uploader.enqueue(key.clone(), Bytes::from_static(b"init segment"));
            wait_for(|| spilled(&spill) == 1, "the object spilled").await;
        } // the process "stops"; the spill stays on disk
        weed.restart();
        let uploader = Uploader::start(store.clone(), cfg(&spill))
            .await
            .expect("restart");
        assert!(uploader.drained(Duration::from_secs(30)).await);
        assert_eq!(
            &store.get(&key).await.expect("uploaded after restart")[..],
            b"init segment"
        );
    }
}

/// Private recordings stay private on a shared machine: the data directory,
/// its subdirectories and every stored or spilled object are the server
/// user's alone.
#[cfg(unix)]
mod file_modes {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    use bytes::Bytes;
    use onair_server::store::ObjectKey;

    use crate::support::test_config;

    /// The permission bits, in octal as `ls` shows them.
    fn mode(p: &Path) -> String {
        let bits = std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777;
        format!("{bits:o}")
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_data_directory_and_everything_stored_in_it_are_private() {
        let _spill = crate::support::spill_metrics_lock().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("onair");
        // The embedded database under the data directory, as `onair serve` has it.
        let config = onair_server::config::Config::defaults(&data);
        let state = onair_server::server::build_state(&config)
            .await
            .expect("build state");
        for dir in ["", "db", "store", "store/.tmp", "spill"] {
            assert_eq!(mode(&data.join(dir)), "700", "{dir}/");
        }
        let key = ObjectKey::new("streams/s/720p/0.m4s").expect("key");
        state
            .store
            .put(&key, Bytes::from_static(b"segment"))
            .await
            .expect("put");
        for dir in ["store/streams", "store/streams/s", "store/streams/s/720p"] {
            assert_eq!(mode(&data.join(dir)), "700", "{dir}/");
        }
        assert_eq!(mode(&data.join("store/streams/s/720p/0.m4s")), "600");

        // The store fails for real (its staging directory is a file now):
        // the upload spills, privately, and lands once the store is back.
        let staging = data.join("store/.tmp");
        std::fs::remove_dir(&staging).expect("rmdir");
        std::fs::write(&staging, b"in the way").expect("block");
        let spilled = ObjectKey::new("streams/s/720p/1.m4s").expect("key");
        state
            .uploader
            .enqueue(spilled.clone(), Bytes::from_static(b"next"));
        let spill = data.join("spill");
        let mut waited = 0;
        while std::fs::read_dir(&spill).expect("spill").count() == 0 {
            assert!(waited < 300, "the object never spilled");
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
        for f in files_under(&spill) {
            assert_eq!(mode(&f), "600", "{}", f.display());
        }
        std::fs::remove_file(&staging).expect("unblock");
        std::fs::create_dir(&staging).expect("mkdir");
        assert!(state.uploader.drained(Duration::from_secs(30)).await);
        assert_eq!(mode(&data.join("store/streams/s/720p/1.m4s")), "600");
        for f in files_under(&data.join("store")) {
            assert_eq!(mode(&f), "600", "{}", f.display());
        }
    }

    #[tokio::test]
    async fn an_older_installations_directories_are_closed_at_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("onair");
        // As an older version left them: everything readable by everyone.
        for dir in ["store/streams/old/720p", "spill", "db", "recording-work"] {
            std::fs::create_dir_all(data.join(dir)).expect("mkdir");
        }
        std::fs::write(data.join("store/streams/old/720p/0.m4s"), b"old").expect("write");
        for dir in [
            "",
            "store",
            "store/streams",
            "spill",
            "db",
            "recording-work",
        ] {
            chmod(&data.join(dir), 0o755);
        }
        let config = test_config(&data, |_| {});
        let _state = onair_server::server::build_state(&config)
            .await
            .expect("build state");
        // The operator's directory keeps its mode (a warning says so); the
        // server's own directories in it are closed, and with them
        // everything inside.
        assert_eq!(mode(&data), "755");
        for dir in ["store", "spill", "db", "recording-work"] {
            assert_eq!(mode(&data.join(dir)), "700", "{dir}/");
        }
    }
}
