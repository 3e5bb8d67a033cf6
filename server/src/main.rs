//! The `onair` binary.

use std::process::ExitCode;

use clap::Parser;
use onair_server::config::{Cli, Command};
use onair_server::{admin, media, publish, server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            telemetry::init_logging(args.log_format.into());
            let config = match args.resolve() {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("onair: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match server::run(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("onair: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin(args) => {
            telemetry::init_logging(onair_server::telemetry::LogFormat::Text);
            match admin::run(args).await {
                Ok(outcome) => {
                    println!("{outcome}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("onair admin: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Publish(args) => {
            telemetry::init_logging(onair_server::telemetry::LogFormat::Text);
            if let Err(e) = media::init() {
                eprintln!("onair publish: {e}");
                return ExitCode::FAILURE;
            }
            match publish::run(*args).await {
                Ok(r) => {
                    eprintln!(
                        "published {} chunks, {} bytes, {}.{:03} s of media ({} reconnects); the stream has ended",
                        r.chunks,
                        r.bytes,
                        r.media_us / 1_000_000,
                        (r.media_us / 1000) % 1000,
                        r.reconnects
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("onair publish: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
