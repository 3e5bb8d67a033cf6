//! The `onair` binary.

use std::process::ExitCode;

use clap::Parser;
use onair_server::config::{Cli, Command};
use onair_server::{server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            telemetry::init_logging(args.log_format);
            match server::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("onair: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
