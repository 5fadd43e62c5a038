//! The lake: any `object_store` URL, written atomically under deterministic keys.
//!
//! A finished Parquet file is uploaded from the local spool file either as one
//! conditional PUT (`PutMode::Create`: If-None-Match on S3, GCS and Azure,
//! create-new on a local folder) or, above [`SINGLE_PUT_MAX`], as a multipart
//! upload that becomes visible only when completed. Neither ever exposes a
//! half-written object under the final key.

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

mod upload;
pub use upload::*;
mod kernel;
pub use kernel::*;
mod lake_url;
pub use lake_url::{LakeKind, LakeUrl};

/// A few quick retries inside object_store for 5xx and connection errors;
/// longer outages are the task-level retry's job (delay queues), so that a
/// worker never sits for minutes on one request.
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(60),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(
        "{key}: an object of {found} bytes is already there, this conversion made {expected} bytes; use --overwrite to replace it"
    )]
    Conflict { key: String, found: u64, expected: u64 },
    #[error("{key}: {source}")]
    Store { key: String, source: object_store::Error },
    #[error("{key}: reading the spool file failed: {source}")]
    Spool { key: String, source: std::io::Error },
    #[error("{key}: writing it to the spool file {path} failed: {source}")]
    SpoolWrite { key: String, path: String, source: std::io::Error },
}

#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    single_put_max: u64,
    /// Where large intermediate files go ([`crate::util::spool`]): the
    /// worker's `--spool-dir`, else the temp folder.
    spool_dir: std::path::PathBuf,
    /// What `delta_kernel` reads and writes the tables through: a client of
    /// its own over the same bucket (the kernel runs its I/O on a runtime of
    /// its own, so it shares no connection pool with ours), addressed by URL.
    kernel: Arc<KernelLake>,
}

impl Lake {
    /// Opens `url`: a local folder (created if missing), `file:///...`,
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    /// Cloud credentials and endpoints come from the usual `AWS_*`,
    /// `GOOGLE_*` and `AZURE_*` environment variables.
    pub fn open(lake_url: &LakeUrl) -> anyhow::Result<Lake> {
        let url = lake_url.as_str();
        match lake_url.kind() {
            LakeKind::Local => {
                let dir = lake_url.local_dir().unwrap_or(url);
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("LAKE_URL {url}: cannot create folder: {e}"))?;
                let abs = std::fs::canonicalize(dir).map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&abs)
                    .map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
                let root = url::Url::from_directory_path(&abs)
                    .map_err(|_| anyhow::anyhow!("LAKE_URL {url}: not an absolute folder"))?;
                let kernel = KernelLake::new(Arc::new(object_store::local::LocalFileSystem::new()), root);
                Ok(Lake::new(Arc::new(fs), Path::default(), url, kernel))
            }
            kind => {
                let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
                let build = || -> anyhow::Result<Arc<dyn ObjectStore>> {
                    let err = |e: object_store::Error| anyhow::anyhow!("LAKE_URL {url}: {e}");
                    Ok(match kind {
                        LakeKind::Local | LakeKind::S3 => Arc::new(
                            object_store::aws::AmazonS3Builder::from_env()
                                .with_url(url)
                                .with_retry(retry_config())
                                .build()
                                .map_err(err)?,
                        ),
                        LakeKind::Gcs => Arc::new(
                            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                                .with_url(url)
                                .with_retry(retry_config())
                                .build()
                                .map_err(err)?,
                        ),
                        LakeKind::Azure => Arc::new(
                            object_store::azure::MicrosoftAzureBuilder::from_env()
                                .with_url(url)
                                .with_retry(retry_config())
                                .build()
                                .map_err(err)?,
                        ),
                    })
                };
                Lake::cloud(url, &parsed, build)
            }
        }
    }

    fn new(store: Arc<dyn ObjectStore>, root: Path, url: &str, kernel: KernelLake) -> Lake {
        Lake {
            store,
            root,
            url: url.trim_end_matches('/').to_string(),
            single_put_max: SINGLE_PUT_MAX,
            spool_dir: std::env::temp_dir(),
            kernel: Arc::new(kernel),
        }
    }

    /// The lake as `delta_kernel` reads and writes it.
    pub fn kernel(&self) -> &KernelLake {
        &self.kernel
    }

    /// An S3 lake with an explicit endpoint and credentials (instead of the
    /// environment), e.g. an S3-compatible server.
    pub fn open_s3_with(url: &str, endpoint: &str, key_id: &str, secret: &str) -> anyhow::Result<Lake> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
        let build = || -> anyhow::Result<Arc<dyn ObjectStore>> {
            let store = object_store::aws::AmazonS3Builder::new()
                .with_url(url)
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_access_key_id(key_id)
                .with_secret_access_key(secret)
                .with_region("us-east-1")
                .with_retry(retry_config())
                .build()
                .map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
            Ok(Arc::new(store))
        };
        Lake::cloud(url, &parsed, build)
    }

    /// A cloud lake at `parsed`: our client and the kernel's, each from `build`.
    fn cloud(
        url: &str,
        parsed: &url::Url,
        build: impl Fn() -> anyhow::Result<Arc<dyn ObjectStore>>,
    ) -> anyhow::Result<Lake> {
        let kernel = KernelLake::new(build()?, folder_url(parsed));
        Ok(Lake::new(build()?, Path::from(parsed.path().trim_matches('/')), url, kernel))
    }

    /// A `gs://` lake at `base_url` (a GCS emulator or fake, over plain
    /// HTTP) with a static bearer token: tests, never the metadata server.
    pub fn open_gcs_with(url: &str, base_url: &str, token: &str) -> anyhow::Result<Lake> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
        let build = || -> anyhow::Result<Arc<dyn ObjectStore>> {
            let store = object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_url(url)
                .with_config(object_store::gcp::GoogleConfigKey::BaseUrl, base_url)
                .with_config(object_store::gcp::GoogleConfigKey::BearerToken, token)
                .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                .with_retry(retry_config())
                .build()
                .map_err(|e| anyhow::anyhow!("LAKE_URL {url}: {e}"))?;
            Ok(Arc::new(store))
        };
        Lake::cloud(url, &parsed, build)
    }

    /// Objects larger than `bytes` go up as multipart uploads (default
    /// [`SINGLE_PUT_MAX`]; S3 caps a single PUT at 5 GB).
    pub fn with_single_put_max(mut self, bytes: u64) -> Lake {
        self.single_put_max = bytes;
        self
    }

    /// Large intermediate files (a refresh's rewrite of another tool's
    /// file) go to `dir`, where the worker's own spool files go.
    pub fn with_spool_dir(mut self, dir: std::path::PathBuf) -> Lake {
        self.spool_dir = dir;
        self
    }

    /// A new spool file (removed when dropped) in the lake's spool folder.
    pub fn spool_file(&self, ext: &str) -> crate::util::spool::SpoolFile {
        crate::util::spool::SpoolFile::new(&self.spool_dir, ext)
    }

    fn path(&self, key: &str) -> Path {
        if self.root.as_ref().is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.root.as_ref()))
        }
    }

    /// The full address of `key`, for messages.
    pub fn display(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, LakeError> {
        match self.store.head(&self.path(key)).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(LakeError::Store { key: self.display(key), source }),
        }
    }

    /// The object under `key`, or `None` when there is none (one request).
    pub async fn get_opt(&self, key: &str) -> Result<Option<bytes::Bytes>, LakeError> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(LakeError::Store { source: object_store::Error::NotFound { .. }, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, key: &str) -> Result<bytes::Bytes, LakeError> {
        let store_err = |source| LakeError::Store { key: self.display(key), source };
        self.store.get(&self.path(key)).await.map_err(store_err)?.bytes().await.map_err(store_err)
    }

    /// Streams the object under `key` into the file `to` (created or
    /// truncated): one chunk of the body in memory at a time. Returns its size.
    pub async fn download_to(&self, key: &str, to: &FsPath) -> Result<u64, LakeError> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let store_err = |source| LakeError::Store { key: self.display(key), source };
        let file_err =
            |source| LakeError::SpoolWrite { key: self.display(key), path: to.display().to_string(), source };
        let mut body = self.store.get(&self.path(key)).await.map_err(store_err)?.into_stream();
        let mut file = tokio::fs::File::create(to).await.map_err(file_err)?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(store_err)?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(file_err)?;
        }
        file.flush().await.map_err(file_err)?;
        Ok(size)
    }

    /// Every key below `prefix` with its size, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, LakeError> {
        Ok(self.list_meta(prefix).await?.into_iter().map(|(k, size, _)| (k, size)).collect())
    }

    /// Objects under `prefix` with their size and last modification (ms
    /// since the epoch), keys relative to the lake root.
    pub async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, u64, i64)>, LakeError> {
        use futures_util::StreamExt;
        let p = self.path(prefix);
        let mut out = Vec::new();
        let mut s = self.store.list(Some(&p));
        let root = self.root.as_ref().to_string();
        while let Some(m) = s.next().await {
            let m = m.map_err(|source| LakeError::Store { key: self.display(prefix), source })?;
            let k = m.location.as_ref();
            let k = if root.is_empty() { k } else { k.strip_prefix(&format!("{root}/")).unwrap_or(k) };
            out.push((k.to_string(), m.size, m.last_modified.timestamp_millis()));
        }
        out.sort();
        Ok(out)
    }

    /// The row count in a Parquet object's footer. `size` is the object's
    /// size, as listed.
    pub async fn parquet_rows(&self, key: &str, size: u64) -> Result<u64, LakeError> {
        let meta = self.parquet_metadata(key, size).await?;
        Ok(meta.file_metadata().num_rows().max(0) as u64)
    }

    /// A Parquet object's footer (only the footer is read: its last 8
    /// bytes, then the metadata they point at). `size` is the object's size.
    pub async fn parquet_metadata(
        &self,
        key: &str,
        size: u64,
    ) -> Result<parquet::file::metadata::ParquetMetaData, LakeError> {
        let path = self.path(key);
        let store_err = |source| LakeError::Store { key: self.display(key), source };
        let bad = |message: String| LakeError::Store {
            key: self.display(key),
            source: object_store::Error::Generic { store: "lake", source: message.into() },
        };
        if size < 12 {
            return Err(bad(format!("{size} bytes: not a Parquet file")));
        }
        let tail = self.store.get_range(&path, size - 8..size).await.map_err(store_err)?;
        if tail.len() != 8 || &tail[4..] != b"PAR1" {
            return Err(bad("no Parquet footer at the end".into()));
        }
        let len = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
        if len + 8 > size || len > crate::convert::MAX_FOOTER_BYTES {
            return Err(bad(format!("a footer of {len} bytes in a file of {size}")));
        }
        let footer = self.store.get_range(&path, size - 8 - len..size - 8).await.map_err(store_err)?;
        parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
            .map_err(|e| bad(format!("unreadable footer: {e}")))
    }

    /// Deletes an object (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), LakeError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(LakeError::Store { key: self.display(key), source }),
        }
    }
}

impl LakeError {
    /// Whether the error is worth retrying (5xx, timeouts, connection, local disk).
    pub fn is_transient(&self) -> bool {
        match self {
            LakeError::Conflict { .. } => false,
            LakeError::Spool { .. } | LakeError::SpoolWrite { .. } => true,
            LakeError::Store { source, .. } => !matches!(
                source,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::InvalidPath { .. }
            ),
        }
    }
}
