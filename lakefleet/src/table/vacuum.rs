//! The vacuum policy: delete what no version within the retention needs,
//! never what a worker may still commit.

use super::*;

/// What a vacuum deleted (or, dry, would delete): keys and sizes.
#[derive(Debug, Clone, Default)]
pub struct Vacuumed {
    pub deleted: Vec<(String, u64)>,
    /// Removed files kept: removed more recently than the retention.
    pub kept: usize,
}

impl Table<'_> {
    /// Deletes the objects of the dataset's folder that no version of the
    /// table within `retention` references: files removed longer ago than
    /// the retention, and files never committed (a worker died between its
    /// write and its commit) older than the retention. Live files (and
    /// their deletion vectors), the log and anything under a `_` folder are
    /// never touched. `None`: the folder is not a table (nothing is deleted).
    pub async fn vacuum(&self, retention: Duration, dry_run: bool) -> Result<Option<Vacuumed>, TableError> {
        let snap = self.snapshot().await?;
        if snap.version.is_none() {
            return Ok(None);
        }
        if retention < MIN_RETENTION {
            return Err(TableError::Unsupported {
                table: self.ds.name.clone(),
                message: format!(
                    "a retention of {} is shorter than the longest a worker may hold an uploaded object before its commit ({}: an upload adopted up to {} after it was written, then committed within --task-timeout, at most {}); nothing was deleted",
                    human(retention),
                    human(MIN_RETENTION),
                    human(crate::lake::ADOPT_MAX_AGE),
                    human(MAX_TASK_TIMEOUT)
                ),
            });
        }
        if let Some(kept) = snap.kernel.as_ref().and_then(|k| k.table_properties().deleted_file_retention_duration)
            && retention < kept
        {
            return Err(TableError::Unsupported {
                table: self.ds.name.clone(),
                message: format!(
                    "a retention of {} is shorter than the table's delta.deletedFileRetentionDuration ({}), which readers of earlier versions rely on; nothing was deleted",
                    human(retention),
                    human(kept)
                ),
            });
        }
        let referenced =
            self.referenced_since(&snap, now_ms() - retention.as_millis().min(i64::MAX as u128) as i64).await?;
        let cutoff = now_ms() - retention.as_millis().min(i64::MAX as u128) as i64;
        let root = format!("{}/", self.ds.name);
        let mut out = Vacuumed::default();
        for (key, size, modified) in self.lake.list_meta(&root).await? {
            let rel = key.strip_prefix(&root).unwrap_or(&key);
            if rel.starts_with('_') || rel.contains("/_") || snap.files.contains_key(rel) {
                continue;
            }
            if referenced.contains(rel) || modified >= cutoff {
                out.kept += 1;
                continue;
            }
            if !dry_run {
                // A worker may have written the object again since the
                // listing (an upload too old to adopt): look once more.
                if self.lake.head(&key).await?.is_some_and(|m| m.last_modified.timestamp_millis() >= cutoff) {
                    out.kept += 1;
                    continue;
                }
                self.lake.delete(&key).await?;
            }
            out.deleted.push((key, size));
        }
        Ok(Some(out))
    }

    /// Every path (data files and deletion vector files) the log names in
    /// an action of a commit at or after `since_ms`, or live at the newest
    /// version: what a reader of any version inside the retention may read.
    async fn referenced_since(&self, snap: &Snapshot, since_ms: i64) -> Result<BTreeSet<String>, TableError> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for f in snap.files.values() {
            out.insert(f.path.clone());
        }
        let log = format!("{}/_delta_log/", self.ds.name);
        for (key, _, modified) in self.lake.list_meta(&log).await? {
            if !key.ends_with(".json") || modified < since_ms {
                continue;
            }
            let Some(bytes) = self.lake.get_opt(&key).await? else { continue };
            for line in String::from_utf8_lossy(&bytes).lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                for kind in ["add", "remove"] {
                    let Some(a) = v.get(kind) else { continue };
                    if let Some(p) = a.get("path").and_then(|p| p.as_str()) {
                        out.insert(unescape(p));
                    }
                    if let Some(dv) = a.get("deletionVector") {
                        out.extend(dv_file(dv));
                    }
                }
            }
        }
        // Live files' deletion vectors (those added before the retention).
        for line in self.live_deletion_vectors(snap).await? {
            out.insert(line);
        }
        Ok(out)
    }

    /// The deletion vector files of the live files (a scan of the newest version).
    async fn live_deletion_vectors(&self, snap: &Snapshot) -> Result<Vec<String>, TableError> {
        if !snap.files.values().any(|f| f.deletion_vector) {
            return Ok(Vec::new());
        }
        // The kernel does not expose a descriptor's file name; a live file
        // with a deletion vector keeps every `deletion_vector_*` file.
        let root = format!("{}/", self.ds.name);
        Ok(self
            .lake
            .list(&root)
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(&root).map(str::to_string))
            .filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with("deletion_vector_")))
            .collect())
    }
}

/// The relative path of a deletion vector's file (`u` storage: a UUID
/// encoded in Z85 after an optional prefix), as Delta names it.
pub(super) fn dv_file(dv: &serde_json::Value) -> Option<String> {
    let storage = dv.get("storageType")?.as_str()?;
    let path = dv.get("pathOrInlineDv")?.as_str()?;
    match storage {
        "u" if path.len() >= 20 => {
            let (prefix, encoded) = path.split_at(path.len() - 20);
            let uuid = z85_uuid(encoded)?;
            Some(if prefix.is_empty() {
                format!("deletion_vector_{uuid}.bin")
            } else {
                format!("{prefix}/deletion_vector_{uuid}.bin")
            })
        }
        "p" => Some(unescape(path.rsplit_once("/_delta_log").map_or(path, |(_, p)| p))),
        _ => None,
    }
}

/// A UUID from its 20 Z85 characters.
pub(super) fn z85_uuid(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    let mut bytes = Vec::with_capacity(16);
    for chunk in s.as_bytes().chunks(5) {
        let mut v: u64 = 0;
        for c in chunk {
            v = v * 85 + ALPHABET.iter().position(|a| a == c)? as u64;
        }
        bytes.extend_from_slice(&(v as u32).to_be_bytes());
    }
    let u = uuid::Uuid::from_slice(&bytes).ok()?;
    Some(u.hyphenated().to_string())
}

/// `2h`, `7d`, `90s`: a duration as `producer vacuum --older-than` takes it.
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86400 && s.is_multiple_of(86400) => format!("{}d", s / 86400),
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Paths in the log are URIs: a space is `%20`.
pub(super) fn unescape(p: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", p.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deletion_vector_names_its_file() {
        // The example of Delta's PROTOCOL.md: ab^-aqEH.-t@S}K{vb[*k^ is
        // d2c639aa-8816-431a-aaf6-d3fe2512ff61, prefix "ab".
        let dv = serde_json::json!({"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "offset": 4, "sizeInBytes": 40, "cardinality": 6});
        assert_eq!(dv_file(&dv).as_deref(), Some("ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"));
    }
}
