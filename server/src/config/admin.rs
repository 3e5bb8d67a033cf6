//! `onair admin ...`: its subcommands and their flags.

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::*;

/// `onair admin ...`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The administration subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user, or set an existing user's password and role (their
    /// sessions end). Opens the configured database and migrates it first; with
    /// the embedded database, stop `onair serve` on this data dir first.
    CreateUser(CreateUserArgs),
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, including other people's streams.
    Admin,
    /// Creates and runs their own streams.
    Broadcaster,
    /// Watches only.
    Viewer,
}

impl From<RoleArg> for app::accounts::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => app::accounts::Role::Admin,
            RoleArg::Broadcaster => app::accounts::Role::Broadcaster,
            RoleArg::Viewer => app::accounts::Role::Viewer,
        }
    }
}

/// Options of `onair admin create-user`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("password_source").required(true).args(["password", "password_stdin"])))]
pub struct CreateUserArgs {
    /// Where the data lives (the same flags and variables as `onair serve`).
    #[command(flatten)]
    pub database: DbArgs,

    /// The username: 3 to 32 of a-z, 0-9, _ and -.
    #[arg(long)]
    pub username: String,

    /// The password (at least 8 characters). Visible to other local users in
    /// the process list: prefer --password-stdin.
    #[arg(long)]
    pub password: Option<Secret>,

    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,

    /// The user's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
}
