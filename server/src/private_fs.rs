//! Files and directories only the server's own user may read: recordings,
//! segments, spilled uploads and the database are private data, so every
//! directory the server creates is [`DIR_MODE`] and every file it stores is
//! [`FILE_MODE`], whatever the umask (which can only take bits away).
//!
//! - A directory the operator names (`--data-dir`, a `file://` store root)
//!   is created private when missing; an existing one keeps its mode (it may
//!   be shared on purpose), with a warning when others can read it
//!   ([`warn_if_open`]).
//! - The server's own directories under the data directory (`db`, `store`,
//!   `spill`, `recording-work`) are made private even when they exist, so an
//!   older installation's 0755 directories are closed at the next start.

use std::io;
use std::path::Path;

/// Mode of every directory the server creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the server stores.
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and its missing parents with [`DIR_MODE`]. An existing
/// directory keeps its mode.
pub fn create_dir(path: &Path) -> io::Result<()> {
    builder().create(path)
}

/// [`create_dir`] for a directory that is the server's own: set to
/// [`DIR_MODE`] even when it already exists.
pub fn own_dir(path: &Path) -> io::Result<()> {
    builder().create(path)?;
    restrict(path)
}

/// [`create_dir`] from async code (for the store's object directories,
/// created per object).
pub async fn create_dir_async(path: &Path) -> io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(DIR_MODE);
    b.create(path).await
}

/// Writes `bytes` to a new file at `path` with [`FILE_MODE`] (a file
/// already there is replaced by truncation and keeps its mode).
pub async fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = options().open(path).await?;
    f.write_all(bytes).await?;
    f.flush().await
}

/// Copies the file `from` to a new file `to` with [`FILE_MODE`] (unlike
/// `fs::copy`, which gives `to` the mode of `from`). Returns the bytes copied.
pub async fn copy(from: &Path, to: &Path) -> io::Result<u64> {
    let mut src = tokio::fs::File::open(from).await?;
    let mut dst = options().open(to).await?;
    let n = tokio::io::copy(&mut src, &mut dst).await?;
    tokio::io::AsyncWriteExt::flush(&mut dst).await?;
    Ok(n)
}

fn builder() -> std::fs::DirBuilder {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
    b
}

fn options() -> tokio::fs::OpenOptions {
    let mut o = tokio::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(FILE_MODE);
    o
}

#[cfg(unix)]
fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != DIR_MODE {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))?;
        tracing::info!(path = %path.display(), from = format!("{mode:o}"), "made a data directory private (700)");
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Logs a warning when other users may read the directory `path`.
#[cfg(unix)]
pub fn warn_if_open(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "other users can read this data directory; chmod 700 it");
        }
    }
}

/// Logs a warning when other users may read the directory `path`.
#[cfg(not(unix))]
pub fn warn_if_open(_path: &Path) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn directories_are_700_and_files_600_whatever_the_umask_allows() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        create_dir(&data.join("a/b")).expect("create");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("a/b")), 0o700);
        create_dir_async(&data.join("c/d")).await.expect("create");
        assert_eq!(mode(&data.join("c")), 0o700);
        // An existing directory the operator chose keeps its mode...
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        create_dir(&shared).expect("exists");
        assert_eq!(mode(&shared), 0o755);
        // ...one of the server's own is closed.
        own_dir(&shared).expect("own");
        assert_eq!(mode(&shared), 0o700);

        let file = data.join("a/object");
        write(&file, b"private").await.expect("write");
        assert_eq!(mode(&file), 0o600);
        // A copy is private even when its source is not.
        let open = tmp.path().join("open");
        std::fs::write(&open, b"x").expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(copy(&open, &data.join("copy")).await.expect("copy"), 1);
        assert_eq!(mode(&data.join("copy")), 0o600);
    }
}
