//! What the benches that load a real server share: the `onair` binary
//! started on 127.0.0.1 with an in-memory database (killed on drop), and a
//! broadcaster with one public stream created over the API.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `onair serve` as its own process, so its memory and CPU are its own.
pub struct Server {
    pub child: Child,
    pub addr: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server under test: `ONAIR_BENCH_BIN` (e.g. another build), or the
/// binary this bench was built with.
pub fn server_binary() -> String {
    std::env::var("ONAIR_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_onair").to_string())
}

/// Starts the server on a free loopback port with these extra flags (and no
/// per-address connection caps); no RTMP or SRT listener unless `extra` has
/// `--rtmp-addr` or `--srt-addr`, and an in-memory database unless it has
/// `--db`.
pub fn start(extra: &[String]) -> Server {
    let data = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    // No RTMP, SRT or WHIP listener unless `extra` asks for one (a flag may
    // be given only once).
    let mut defaults = Vec::new();
    for flag in ["--rtmp-addr", "--srt-addr", "--webrtc-udp-addr"] {
        if !extra.iter().any(|a| a == flag) {
            defaults.extend([flag, ""]);
        }
    }
    // An in-memory database unless `extra` names one.
    if !extra.iter().any(|a| a == "--db") {
        defaults.extend(["--db", "mem://"]);
    }
    let child = Command::new(server_binary())
        .args(["serve", "--addr", &addr])
        .args(&defaults)
        .arg("--data-dir")
        .arg(data.path())
        .args(extra)
        // Every bench client is 127.0.0.1, thousands at once: no per-address
        // caps (a flag in `extra` would still win over these).
        .env("ONAIR_HTTP_MAX_CONNECTIONS_PER_IP", "0")
        .env("ONAIR_EVENTS_MAX_CONNECTIONS_PER_IP", "0")
        .env("ONAIR_INGEST_MAX_CONNECTIONS_PER_IP", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("onair starts");
    Server {
        child,
        addr,
        _data: data,
    }
}

/// Waits for `/healthz`, registers a broadcaster and creates a public stream
/// titled `title`; returns the stream id and the session cookie.
pub async fn broadcaster_stream(
    http: &reqwest::Client,
    addr: &str,
    title: &str,
) -> (String, String) {
    let (id, cookie, _) = broadcaster_stream_token(http, addr, title).await;
    (id, cookie)
}

/// As [`broadcaster_stream`], also returning the stream's ingest token.
pub async fn broadcaster_stream_token(
    http: &reqwest::Client,
    addr: &str,
    title: &str,
) -> (String, String, String) {
    let origin = format!("http://{addr}");
    for _ in 0..300 {
        if http
            .get(format!("{origin}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = http
        .post(format!("{origin}/api/v1/auth/register"))
        .header("origin", &origin)
        .json(&serde_json::json!({"username": "benchcaster", "password": "correct horse battery"}))
        .send()
        .await
        .expect("register");
    assert!(res.status().is_success(), "register: {}", res.status());
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let (id, token) = create_stream(http, addr, &cookie, title).await;
    (id, cookie, token)
}

/// Creates a public stream titled `title` as the user of session `cookie`;
/// returns its id and ingest token.
pub async fn create_stream(
    http: &reqwest::Client,
    addr: &str,
    cookie: &str,
    title: &str,
) -> (String, String) {
    let origin = format!("http://{addr}");
    let stream: serde_json::Value = http
        .post(format!("{origin}/api/v1/streams"))
        .header("origin", &origin)
        .header("cookie", cookie)
        .json(&serde_json::json!({"title": title, "visibility": "public"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    (
        stream["id"].as_str().expect("id").to_string(),
        stream["ingest_token"]
            .as_str()
            .expect("ingest token")
            .to_string(),
    )
}

/// User+system CPU seconds of a process so far (`/proc/<pid>/stat`; `pid`
/// may be `self`).
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let get = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    // utime = 14, stime = 15, in clock ticks (100 a second on Linux).
    (get(14) + get(15)) as f64 / 100.0
}

/// User+system CPU seconds of this process's children that have been waited
/// for (`cutime` + `cstime` of `/proc/self/stat`).
pub fn waited_children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let get = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    (get(16) + get(17)) as f64 / 100.0
}

/// An events socket as the benches open it.
pub type EventsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Says `hello` as simulated client `n` in `role` and reads until `welcome`.
pub async fn hello(ws: &mut EventsSocket, role: app::protocol::events::ClientRole, n: usize) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let hello = app::protocol::events::ClientMessage::Hello {
        version: 1,
        role,
        viewer_id: Some(format!("bench-viewer-{n:08}")),
        token: None,
        last_id: None,
    };
    ws.send(Message::Text(
        serde_json::to_string(&hello).expect("json").into(),
    ))
    .await
    .expect("hello");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"welcome\"") => return,
            Some(Ok(_)) => continue,
            other => panic!("no welcome: {other:?}"),
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when asked).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A helper server (NATS, SurrealDB) as a child process with a data
/// directory of its own, killed on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(
        program: &std::path::Path,
        args: &[String],
        port: u16,
        dir: tempfile::TempDir,
    ) -> Daemon {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        let end = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < end,
                "{} did not listen on {port}",
                program.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            port,
            _dir: dir,
        }
    }

    /// Debian's `nats-server` (or `ONAIR_NATS_SERVER`) with JetStream.
    pub fn nats() -> Daemon {
        let program = std::env::var_os("ONAIR_NATS_SERVER")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var("PATH")
                    .unwrap_or_default()
                    .split(':')
                    .chain(["/usr/sbin", "/usr/bin"])
                    .map(|d| std::path::Path::new(d).join("nats-server"))
                    .find(|p| p.exists())
            })
            .expect("nats-server is missing: apt-get install nats-server (make deps-bench does)");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let args = [
            "-a".to_string(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            dir.path().join("js").display().to_string(),
        ];
        Daemon::spawn(&program, &args, port, dir)
    }

    /// The SurrealDB server (`ONAIR_SURREAL_BIN`, or the workspace's
    /// `onair-surreal` in the dev profile) on surrealkv, user `root`,
    /// password `password`.
    pub fn surreal(password: &str) -> Daemon {
        let program = std::env::var_os("ONAIR_SURREAL_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                // target/<profile>/deps/<bench> -> target/debug/surreal
                let exe = std::env::current_exe().expect("the bench binary");
                exe.ancestors()
                    .nth(3)
                    .expect("the target dir")
                    .join("debug/surreal")
            });
        assert!(
            program.exists(),
            "{} is missing: `cargo build -p onair-surreal` (make bench does)",
            program.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let args = [
            "start".to_string(),
            "--no-banner".into(),
            "--bind".into(),
            format!("127.0.0.1:{port}"),
            "--user".into(),
            "root".into(),
            "--pass".into(),
            password.into(),
            format!("surrealkv://{}", dir.path().join("db").display()),
        ];
        Daemon::spawn(&program, &args, port, dir)
    }
}
