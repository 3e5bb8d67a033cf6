//! `onair admin`: administration on the configured database.
//!
//! `onair admin create-user --username U --password-stdin --role admin` opens
//! the database named by the same flags and variables as `onair serve`,
//! applies pending migrations, and creates the user or updates an existing
//! one's password and role (ending their sessions).

use std::io::BufRead;

use app::accounts::{validate_password, validate_username, Role};

use crate::auth::passwords::hash_blocking;
use crate::auth::AuthError;
use crate::config::{AdminArgs, AdminCommand, ConfigError, CreateUserArgs};
use crate::db::users::Upserted;
use crate::db::{Database, DbError};

/// Why an admin command failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error("{0}{hint}", hint = lock_hint(.0))]
    Db(Box<DbError>),
    /// A value breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// Reading the password from standard input failed.
    #[error("could not read the password from standard input: {0}")]
    Stdin(std::io::Error),
    /// Hashing failed.
    #[error(transparent)]
    Auth(Box<AuthError>),
}

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        AdminError::Db(Box::new(e))
    }
}

impl From<AuthError> for AdminError {
    fn from(e: AuthError) -> Self {
        AdminError::Auth(Box::new(e))
    }
}

fn lock_hint(e: &DbError) -> &'static str {
    if matches!(e, DbError::Connect { .. }) {
        " (with the embedded database, stop `onair serve` on this data dir first: only one process may open it)"
    } else {
        ""
    }
}

/// What a successful command did, for the operator.
pub type Outcome = String;

/// Runs `onair admin ...`.
pub async fn run(args: AdminArgs) -> Result<Outcome, AdminError> {
    match args.command {
        AdminCommand::CreateUser(a) => {
            let password = read_password(&a, &mut std::io::stdin().lock())?;
            create_user(&a, password).await
        }
    }
}

/// The password from `--password` or the first line of `input`.
pub fn read_password(
    args: &CreateUserArgs,
    input: &mut impl BufRead,
) -> Result<String, AdminError> {
    if let Some(p) = &args.password {
        return Ok(p.expose().to_string());
    }
    let mut line = String::new();
    input.read_line(&mut line).map_err(AdminError::Stdin)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(password.to_string())
}

/// Creates or updates the user in the configured database.
pub async fn create_user(args: &CreateUserArgs, password: String) -> Result<Outcome, AdminError> {
    validate_username(&args.username)
        .map_err(|e| AdminError::Invalid(format!("--username {e}")))?;
    validate_password(&password).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let role: Role = args.role.into();

    let db = Database::connect(&args.database.db_settings()?).await?;
    db.migrate().await?;
    let hash = tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))??;
    let outcome = match db.upsert_user(&args.username, &hash, role.as_str()).await? {
        Upserted::Created(u) => format!("created user {} ({}, id {})", u.username, u.role, u.id),
        Upserted::Updated(u, ended) => format!(
            "updated user {} ({}, id {}): new password; {ended} session(s) ended",
            u.username, u.role, u.id
        ),
    };
    Ok(outcome)
}
