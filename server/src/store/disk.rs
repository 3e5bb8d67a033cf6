//! The local-disk object store: one file per object under a root directory.
//! Writes go to `<root>/.tmp/` first and are renamed into place, so readers
//! never see a half-written object. Objects are private files (0600, in 0700
//! directories: [`crate::private_fs`]).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{ByteRange, ObjectKey, ObjectMeta, ObjectStore, RangedBytes, StoreError};

/// Objects as files under a directory.
#[derive(Debug)]
pub struct DiskStore {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

impl DiskStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub async fn open(root: &Path) -> Result<Self, StoreError> {
        let tmp = root.join(".tmp");
        crate::private_fs::create_dir(root).map_err(io("create", root))?;
        crate::private_fs::warn_if_open(root);
        crate::private_fs::own_dir(&tmp).map_err(io("create", &tmp))?;
        Ok(DiskStore {
            root: root.to_path_buf(),
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    /// The directory objects live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // ObjectKey guarantees plain relative segments, so this stays under root.
        self.root.join(key.as_str())
    }

    fn tmp_path(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{n}", std::process::id()))
    }

    async fn commit(&self, tmp: &Path, key: &ObjectKey) -> Result<(), StoreError> {
        let dest = self.path_of(key);
        if let Some(parent) = dest.parent() {
            crate::private_fs::create_dir_async(parent)
                .await
                .map_err(io("create", parent))?;
        }
        if let Err(e) = tokio::fs::rename(tmp, &dest).await {
            let _ = tokio::fs::remove_file(tmp).await;
            return Err(io("rename", &dest)(e));
        }
        Ok(())
    }
}

fn not_found_or(
    op: &'static str,
    path: &Path,
    key: &ObjectKey,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.display().to_string();
    let key = key.to_string();
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(key)
        } else {
            StoreError::Io {
                op,
                path,
                source: e,
            }
        }
    }
}

#[async_trait]
impl ObjectStore for DiskStore {
    fn describe(&self) -> String {
        format!("disk:{}", self.root.display())
    }

    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError> {
        let tmp = self.tmp_path();
        crate::private_fs::write(&tmp, &body)
            .await
            .map_err(io("write", &tmp))?;
        self.commit(&tmp, key).await
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        let tmp = self.tmp_path();
        let size = crate::private_fs::copy(path, &tmp)
            .await
            .map_err(io("copy", path))?;
        self.commit(&tmp, key).await?;
        Ok(size)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        let path = self.path_of(key);
        let data = tokio::fs::read(&path)
            .await
            .map_err(not_found_or("read", &path, key))?;
        Ok(Bytes::from(data))
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: ByteRange,
    ) -> Result<RangedBytes, StoreError> {
        let path = self.path_of(key);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(not_found_or("open", &path, key))?;
        let total = file.metadata().await.map_err(io("stat", &path))?.len();
        let (first, last) = range
            .resolve(total)
            .ok_or(StoreError::InvalidRange { size: total })?;
        file.seek(SeekFrom::Start(first))
            .await
            .map_err(io("seek", &path))?;
        let len = usize::try_from(last - first + 1)
            .map_err(|_| StoreError::InvalidRange { size: total })?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).await.map_err(io("read", &path))?;
        Ok(RangedBytes {
            bytes: Bytes::from(buf),
            first,
            last,
            total,
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StoreError> {
        let path = self.path_of(key);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(not_found_or("stat", &path, key))?;
        if !meta.is_file() {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size: meta.len(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        // Walk only the deepest directory the prefix names fully.
        let start_rel = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        if start_rel
            .split('/')
            .any(|s| s == ".." || s.starts_with('.'))
        {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut dirs = vec![(self.root.join(start_rel), start_rel.to_string())];
        while let Some((dir, rel)) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &dir)(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io("list", &dir))? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let key = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let ft = entry.file_type().await.map_err(io("stat", &dir))?;
                if ft.is_dir() {
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        dirs.push((entry.path(), key));
                    }
                } else if ft.is_file() && key.starts_with(prefix) {
                    let size = entry.metadata().await.map_err(io("stat", &dir))?.len();
                    out.push(ObjectMeta { key, size });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", &path)(e)),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        let probe = self.tmp_path();
        crate::private_fs::write(&probe, b"ok")
            .await
            .map_err(io("write", &probe))?;
        tokio::fs::remove_file(&probe)
            .await
            .map_err(io("delete", &probe))
    }
}
