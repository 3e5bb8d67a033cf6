//! The S3 object store (AWS S3 or any S3-compatible server), through `aws-sdk-s3`
//! with SigV4. Large files go up as multipart uploads; a failed multipart upload
//! is aborted so no orphan parts are billed.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{timeout::TimeoutConfig, BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{ByteRange, ObjectKey, ObjectMeta, ObjectStore, RangedBytes, StoreError};

/// The smallest part S3 accepts in a multipart upload (except the last).
pub const S3_MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3 connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing slash; may be empty).
    pub prefix: String,
    /// Custom endpoint for S3-compatible servers.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Multipart part size in bytes.
    pub part_size: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// Objects in an S3 bucket under an optional key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: usize,
}

fn s3_err<E, R>(op: &'static str, key: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    SdkError<E, R>: std::error::Error,
{
    StoreError::S3 {
        op,
        key: key.to_string(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

fn status_of<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Parses `bytes FIRST-LAST/TOTAL` from a `Content-Range` header.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

impl S3Store {
    /// Builds a client for the configured bucket. Nothing is contacted until
    /// the first request; [`ObjectStore::check`] tells whether it is reachable.
    pub fn new(cfg: &S3Config) -> Self {
        let creds = Credentials::new(
            &cfg.access_key_id,
            &cfg.secret_access_key,
            None,
            None,
            "onair-config",
        );
        // A server that stops answering mid-request (killed, or a dead pooled
        // connection) is given up on after 10 s without a byte, so the upload
        // queue spills instead of waiting.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(10))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(creds)
            .timeout_config(timeouts)
            .force_path_style(cfg.path_style);
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3Store {
            client: Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            part_size: cfg.part_size,
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn strip_prefix<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    /// Uploads a large object in parts read from `reader`, aborting on failure.
    async fn multipart<R>(&self, key: &ObjectKey, mut reader: R) -> Result<u64, StoreError>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        let full = self.full_key(key.as_str());
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| s3_err("create_multipart_upload", &full, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(StoreError::S3 {
                op: "create_multipart_upload",
                key: full,
                message: "the server returned no upload id".into(),
            });
        };
        let result = self.upload_parts(&full, &upload_id, &mut reader).await;
        match result {
            Ok((parts, size)) => {
                let done = CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build();
                let completed = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .multipart_upload(done)
                    .send()
                    .await;
                match completed {
                    Ok(_) => Ok(size),
                    Err(e) => {
                        self.abort(&full, &upload_id).await;
                        Err(s3_err("complete_multipart_upload", &full, e))
                    }
                }
            }
            Err(e) => {
                self.abort(&full, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn upload_parts<R>(
        &self,
        full: &str,
        upload_id: &str,
        reader: &mut R,
    ) -> Result<(Vec<CompletedPart>, u64), StoreError>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut number = 1i32;
        loop {
            let mut buf = Vec::with_capacity(self.part_size);
            let read = (&mut *reader)
                .take(self.part_size as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|source| StoreError::Io {
                    op: "read",
                    path: full.to_string(),
                    source,
                })?;
            if read == 0 && number > 1 {
                break;
            }
            total += read as u64;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| s3_err("upload_part", full, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            );
            number += 1;
            if read < self.part_size {
                break;
            }
        }
        Ok((parts, total))
    }

    async fn abort(&self, full: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(key = full, error = %DisplayErrorContext(&e), "could not abort a failed multipart upload");
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError> {
        if body.len() > self.part_size {
            self.multipart(key, &body[..]).await?;
            return Ok(());
        }
        let full = self.full_key(key.as_str());
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_err("put_object", &full, e))?;
        Ok(())
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        let io = |op| {
            move |source| StoreError::Io {
                op,
                path: path.display().to_string(),
                source,
            }
        };
        let file = tokio::fs::File::open(path).await.map_err(io("open"))?;
        let size = file.metadata().await.map_err(io("stat"))?.len();
        if size > self.part_size as u64 {
            return self.multipart(key, file).await;
        }
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError::Io {
                op: "open",
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
        let full = self.full_key(key.as_str());
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(body)
            .send()
            .await
            .map_err(|e| s3_err("put_object", &full, e))?;
        Ok(size)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        let full = self.full_key(key.as_str());
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(StoreError::NotFound(key.to_string()))
            }
            Err(e) => return Err(s3_err("get_object", &full, e)),
        };
        let body = out.body.collect().await.map_err(|e| StoreError::S3 {
            op: "get_object",
            key: full.clone(),
            message: e.to_string(),
        })?;
        Ok(body.into_bytes())
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: ByteRange,
    ) -> Result<RangedBytes, StoreError> {
        let full = self.full_key(key.as_str());
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .range(range.header_value());
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(StoreError::NotFound(key.to_string()))
            }
            Err(e) if status_of(&e) == Some(416) => {
                let size = self.head(key).await?.size;
                return Err(StoreError::InvalidRange { size });
            }
            Err(e) => return Err(s3_err("get_object", &full, e)),
        };
        let content_range = out.content_range().map(str::to_string);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::S3 {
                op: "get_object",
                key: full.clone(),
                message: e.to_string(),
            })?
            .into_bytes();
        let (first, last, total) = match content_range.as_deref().and_then(parse_content_range) {
            Some(r) => r,
            // A server that ignores Range sends the whole object: cut it here.
            None => {
                let total = body.len() as u64;
                let (first, last) = range
                    .resolve(total)
                    .ok_or(StoreError::InvalidRange { size: total })?;
                let bytes = body.slice(first as usize..=last as usize);
                return Ok(RangedBytes {
                    bytes,
                    first,
                    last,
                    total,
                });
            }
        };
        Ok(RangedBytes {
            bytes: body,
            first,
            last,
            total,
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StoreError> {
        let full = self.full_key(key.as_str());
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => Ok(ObjectMeta {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
            }),
            Err(e) if status_of(&e) == Some(404) => Err(StoreError::NotFound(key.to_string())),
            Err(e) => Err(s3_err("head_object", &full, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full_prefix = self.full_key(prefix);
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_err("list_objects_v2", &full_prefix, e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    out.push(ObjectMeta {
                        key: self.strip_prefix(k).to_string(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let full = self.full_key(key.as_str());
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(s3_err("delete_object", &full, e)),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| s3_err("head_bucket", &self.bucket, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
