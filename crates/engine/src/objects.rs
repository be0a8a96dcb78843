//! Object storage: a local directory (`file:///path`) or an S3-compatible bucket
//! (`s3://bucket/prefix`), through the `object_store` crate.
//!
//! [`Objects`] is the one handle the engine (and the CLI) use for objects: the archive of
//! finished tasks keeps its compressed JSON Lines there, and anything else that outgrows
//! the database can (large task payloads, say): keys are relative paths (`a/b/c.ext`)
//! under the configured prefix, a `put` replaces the whole object atomically (readers see
//! the old object or the new one, never part of one), and [`Objects::get_stream`] reads
//! an object piece by piece without holding it in memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// Where objects live and how to reach them (`[archive]` in a node's config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectsConfig {
    /// `file:///absolute/path` or `s3://bucket[/prefix]`.
    pub url: String,
    /// S3: the endpoint of an S3-compatible store (e.g. `http://127.0.0.1:9000`); unset:
    /// AWS. A custom endpoint gets path-style requests (`endpoint/bucket/key`).
    pub endpoint: Option<String>,
    /// S3: the region (default `us-east-1`, or `AWS_REGION`).
    pub region: Option<String>,
    /// S3: credentials; unset: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`) from the environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// S3: allow a plain `http://` endpoint (a store on the local network).
    pub allow_http: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectsError {
    /// The configuration cannot work (the URL, and why).
    #[error("{0}")]
    Config(String),
    #[error("object {0} not found")]
    NotFound(String),
    /// The store did not answer, or refused (network, credentials, a missing bucket).
    #[error("object storage: {0}")]
    Unavailable(String),
}

/// One object as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// Its key, relative to the prefix.
    pub path: String,
    pub size: u64,
}

/// A handle on a bucket (or directory) and a key prefix in it. Cheap to clone.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Keys are stored under it (empty: the bucket's or directory's root).
    prefix: String,
    /// What the handle points at, for messages (no credentials).
    url: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("url", &self.url).finish()
    }
}

impl Objects {
    /// A handle as configured; a local directory is created if missing. Nothing is read
    /// or written yet (an unreachable bucket shows at the first call).
    pub fn open(config: &ObjectsConfig) -> Result<Objects, ObjectsError> {
        let url = config.url.trim();
        let bad = |m: String| ObjectsError::Config(format!("`{url}`: {m}"));
        if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad(
                    "a file URL needs an absolute path (file:///var/lib/baton/archive)".into(),
                ));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| bad(format!("cannot create the directory: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| bad(format!("cannot use the directory: {e}")))?
                .with_automatic_cleanup(true);
            return Ok(Objects {
                store: Arc::new(fs),
                prefix: String::new(),
                url: url.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket (s3://bucket/prefix)".into()));
            }
            // The standard AWS_* variables first; what the config names wins.
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(30),
                    ..Default::default()
                })
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(5))
                        .with_timeout(Duration::from_secs(60))
                        .with_allow_http(config.allow_http),
                );
            if let Some(endpoint) = &config.endpoint {
                b = b
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            if let Some(region) = &config.region {
                b = b.with_region(region);
            }
            if let Some(key) = &config.access_key_id {
                b = b.with_access_key_id(key);
            }
            if let Some(secret) = &config.secret_access_key {
                b = b.with_secret_access_key(secret);
            }
            let s3 = b.build().map_err(|e| bad(e.to_string()))?;
            return Ok(Objects {
                store: Arc::new(s3),
                prefix: prefix.trim_matches('/').to_string(),
                url: url.to_string(),
            });
        }
        Err(bad(
            "only file:///path and s3://bucket/prefix are supported".into(),
        ))
    }

    /// What the handle points at (`file:///…` or `s3://…`), for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, path: &str) -> Path {
        let path = path.trim_start_matches('/');
        if self.prefix.is_empty() {
            Path::from(path)
        } else {
            Path::from(format!("{}/{path}", self.prefix))
        }
    }

    /// Writes the object `path`, replacing any object there (one request; atomic).
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<(), ObjectsError> {
        self.store
            .put(&self.key(path), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| error(path, e))?;
        Ok(())
    }

    /// The whole object `path`.
    pub async fn get(&self, path: &str) -> Result<Bytes, ObjectsError> {
        let got = self
            .store
            .get(&self.key(path))
            .await
            .map_err(|e| error(path, e))?;
        got.bytes().await.map_err(|e| error(path, e))
    }

    /// The object `path` as a stream of chunks, for objects too big to hold at once.
    /// A missing object fails here, before the stream; a connection lost while reading
    /// ends the stream with an error.
    pub async fn get_stream(
        &self,
        path: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        let got = self
            .store
            .get(&self.key(path))
            .await
            .map_err(|e| error(path, e))?;
        let shown = path.to_string();
        Ok(got.into_stream().map_err(move |e| error(&shown, e)).boxed())
    }

    /// Deletes the object `path`; a missing one is no error.
    pub async fn delete(&self, path: &str) -> Result<(), ObjectsError> {
        match self.store.delete(&self.key(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(error(path, e)),
        }
    }

    /// Every object whose key starts with the directory `prefix` (e.g. `tasks/`), in
    /// key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ObjectsError> {
        let dir = self.key(prefix.trim_end_matches('/'));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut found: Vec<ObjectInfo> = self
            .store
            .list(Some(&dir))
            .map_ok(|m| ObjectInfo {
                path: m
                    .location
                    .as_ref()
                    .strip_prefix(&strip)
                    .unwrap_or(m.location.as_ref())
                    .to_string(),
                size: m.size,
            })
            .try_collect()
            .await
            .map_err(|e| error(prefix, e))?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }
}

fn error(path: &str, e: object_store::Error) -> ObjectsError {
    match e {
        object_store::Error::NotFound { .. } => ObjectsError::NotFound(path.to_string()),
        other => ObjectsError::Unavailable(format!("{path}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &std::path::Path) -> Objects {
        Objects::open(&ObjectsConfig {
            url: format!("file://{}", dir.join("archive").display()),
            ..Default::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_local_directory_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let objects = local(tmp.path());
        objects
            .put("tasks/day=2027-01-02/a.bin", Bytes::from_static(b"one"))
            .await
            .unwrap();
        objects
            .put("tasks/day=2027-01-01/b.bin", Bytes::from_static(b"two"))
            .await
            .unwrap();
        objects
            .put("workflows/c.bin", Bytes::from_static(b"three"))
            .await
            .unwrap();
        assert_eq!(
            objects.get("tasks/day=2027-01-02/a.bin").await.unwrap(),
            Bytes::from_static(b"one")
        );
        let listed = objects.list("tasks/").await.unwrap();
        let paths: Vec<&str> = listed.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            ["tasks/day=2027-01-01/b.bin", "tasks/day=2027-01-02/a.bin"]
        );
        // A put replaces; a stream reads the same bytes.
        objects
            .put("workflows/c.bin", Bytes::from_static(b"four"))
            .await
            .unwrap();
        let chunks: Vec<Bytes> = objects
            .get_stream("workflows/c.bin")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.concat(), b"four");
        objects.delete("workflows/c.bin").await.unwrap();
        objects.delete("workflows/c.bin").await.unwrap();
        assert!(matches!(
            objects.get("workflows/c.bin").await,
            Err(ObjectsError::NotFound(_))
        ));
        assert!(matches!(
            objects.get_stream("nothing").await,
            Err(ObjectsError::NotFound(_))
        ));
        assert!(objects.list("none/").await.unwrap().is_empty());
    }

    #[test]
    fn bad_urls_are_refused_with_the_key() {
        for url in ["ftp://x/y", "file://relative/dir", "s3://", "/just/a/path"] {
            let e = Objects::open(&ObjectsConfig {
                url: url.into(),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with(&format!("`{url}`: ")), "{url}: {e}");
        }
        let s3 = Objects::open(&ObjectsConfig {
            url: "s3://bucket/some/prefix/".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            allow_http: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s3.prefix, "some/prefix");
        assert_eq!(s3.key("/a/b").as_ref(), "some/prefix/a/b");
    }
}
