//! Writing objects: a Parquet file's one upload (conditional single PUT, or
//! multipart), adopting an object already there only when it holds the same
//! bytes, and small create-if-absent objects (manifests, markers).

use super::*;

/// The oldest object a worker adopts as its own upload (an earlier delivery's,
/// whose commit did not happen); an older one is written again, so that its
/// age stays inside what `producer vacuum` keeps ([`crate::table::MIN_RETENTION`]).
pub const ADOPT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Files up to this size go up in one conditional PUT.
pub const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;

/// Part size of multipart uploads.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Whether an existing object is too old to adopt ([`ADOPT_MAX_AGE`]).
pub(super) fn stale(found: &ObjectMeta) -> bool {
    chrono::Utc::now().signed_duration_since(found.last_modified).to_std().is_ok_and(|age| age > ADOPT_MAX_AGE)
}

/// What an upload does with an object already under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Plain files: the same bytes are adopted (a repeat), other bytes are a
    /// conflict (`--overwrite` replaces them).
    Adopt,
    /// A table's next generation: nothing references the key yet, so the
    /// same bytes (an earlier delivery's upload, under [`ADOPT_MAX_AGE`])
    /// are adopted and anything else is replaced.
    Replace,
    /// Always written (`--overwrite`, a refresh of plain files).
    Overwrite,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// The object was written now.
    Written,
    /// An identical object (the same bytes) was already there: nothing written.
    AlreadyPresent,
}

impl Lake {
    /// Uploads the local file `file` (`size` bytes) to `key`; `existing`
    /// says what an object already under the key means (see [`Existing`]).
    /// An existing object is adopted only when it holds exactly the file's
    /// bytes (compared by SHA-256). A single PUT is conditional and finds an
    /// existing object by itself; the multipart path, which cannot be
    /// conditional, looks first.
    pub async fn upload_file(
        &self,
        key: &str,
        file: &FsPath,
        size: u64,
        existing: Existing,
    ) -> Result<Uploaded, LakeError> {
        let path = self.path(key);
        let spool = |source| LakeError::Spool { key: self.display(key), source };
        let store_err = |source| LakeError::Store { key: self.display(key), source };
        if existing != Existing::Overwrite {
            let found = if size <= self.single_put_max {
                let data = tokio::fs::read(file).await.map_err(spool)?;
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match self.store.put_opts(&path, PutPayload::from(data), opts).await {
                    Ok(_) => return Ok(Uploaded::Written),
                    // Someone else (or our own lost response) created it: look.
                    Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                        match self.head(key).await? {
                            Some(found) => found,
                            None => {
                                return Err(LakeError::Conflict { key: self.display(key), found: 0, expected: size });
                            }
                        }
                    }
                    Err(source) => return Err(store_err(source)),
                }
            } else {
                match self.head(key).await? {
                    Some(found) => found,
                    None => return self.put_file(key, file).await,
                }
            };
            let adoptable = existing == Existing::Adopt || !stale(&found);
            if adoptable && found.size == size && self.same_bytes(key, file).await? {
                return Ok(Uploaded::AlreadyPresent);
            }
            if existing == Existing::Adopt {
                return Err(LakeError::Conflict { key: self.display(key), found: found.size, expected: size });
            }
            // Replace: another conversion's bytes, or an upload too old to
            // adopt; nothing references the key yet.
        }
        if size <= self.single_put_max {
            let data = tokio::fs::read(file).await.map_err(spool)?;
            let opts = PutOptions { mode: PutMode::Overwrite, ..Default::default() };
            self.store.put_opts(&path, PutPayload::from(data), opts).await.map_err(store_err)?;
            return Ok(Uploaded::Written);
        }
        self.put_file(key, file).await
    }

    /// Whether the object under `key` holds exactly the bytes of `file`.
    pub(super) async fn same_bytes(&self, key: &str, file: &FsPath) -> Result<bool, LakeError> {
        use futures_util::StreamExt;
        use sha2::Digest;
        let spool = |source| LakeError::Spool { key: self.display(key), source };
        let store_err = |source| LakeError::Store { key: self.display(key), source };
        let mut ours = sha2::Sha256::new();
        let mut f = tokio::fs::File::open(file).await.map_err(spool)?;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = f.read(&mut buf).await.map_err(spool)?;
            if n == 0 {
                break;
            }
            ours.update(&buf[..n]);
        }
        let mut theirs = sha2::Sha256::new();
        let mut stream = self.store.get(&self.path(key)).await.map_err(store_err)?.into_stream();
        while let Some(chunk) = stream.next().await {
            theirs.update(chunk.map_err(store_err)?);
        }
        Ok(ours.finalize() == theirs.finalize())
    }

    /// A multipart upload of `file` to `key` (visible only once completed).
    pub(super) async fn put_file(&self, key: &str, file: &FsPath) -> Result<Uploaded, LakeError> {
        let path = self.path(key);
        let spool = |source| LakeError::Spool { key: self.display(key), source };
        let store_err = |source| LakeError::Store { key: self.display(key), source };
        let mut f = tokio::fs::File::open(file).await.map_err(spool)?;
        let upload = self.store.put_multipart(&path).await.map_err(store_err)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        // Any failure aborts the upload, so that the store keeps no orphan parts.
        let failed = loop {
            match f.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => {
                    if let Err(e) = w.wait_for_capacity(2).await {
                        break Some(store_err(e));
                    }
                    w.write(&buf[..n]);
                }
                Err(e) => break Some(spool(e)),
            }
        };
        if let Some(e) = failed {
            w.abort().await.ok();
            return Err(e);
        }
        w.finish().await.map_err(store_err)?;
        Ok(Uploaded::Written)
    }

    /// Creates a small object (a table's log entry) if no object is under
    /// `key`: `false` when one is (another writer's, or our own create whose
    /// answer was lost: the caller reads it and knows).
    pub async fn create_small(&self, key: &str, body: Vec<u8>) -> Result<bool, LakeError> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path(key), PutPayload::from(body), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(source) => Err(LakeError::Store { key: self.display(key), source }),
        }
    }

    /// Writes a small object (a manifest) in one PUT, replacing any.
    pub async fn put_small(&self, key: &str, body: Vec<u8>) -> Result<(), LakeError> {
        self.store
            .put(&self.path(key), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|source| LakeError::Store { key: self.display(key), source })
    }
}
