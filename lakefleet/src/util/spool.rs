//! Spool files: large intermediate files on local disk (a source, the
//! Parquet being written, another tool's file a refresh rewrites), named
//! `lakefleet-{pid}-{n}.{parquet|source}` in the spool folder, removed when
//! dropped, and those of dead processes removed at a worker's start.

use std::path::{Path, PathBuf};

/// A spool file, removed however the work that made it ends.
pub struct SpoolFile(pub PathBuf);

impl SpoolFile {
    /// A new name in `dir`: `lakefleet-{pid}-{n}.{ext}` (`ext`: `parquet`
    /// or `source`, the two [`clean`] knows).
    pub fn new(dir: &Path, ext: &str) -> SpoolFile {
        SpoolFile(dir.join(format!("lakefleet-{}.{ext}", unique())))
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `{pid}-{n}`: unique within this host's processes.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Removes spool files left by processes of this host that died without
/// cleaning up (`kill -9`, OOM): `lakefleet-{pid}-{n}.parquet` (or
/// `.source`) whose process is gone. Returns how many were removed.
pub fn clean(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) =
            name.strip_prefix("lakefleet-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if (name.ends_with(".parquet") || name.ends_with(".source"))
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}
