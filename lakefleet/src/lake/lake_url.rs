//! `LAKE_URL`, parsed once (with the other settings, at start) into the kind
//! of store it names; everything after passes this value, never the string.

use std::fmt;

use crate::util::text::redact;

/// The kind of store a lake URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeKind {
    /// A folder: a path, or `file:///path`.
    Local,
    /// `s3://` or `s3a://`.
    S3,
    /// `gs://`.
    Gcs,
    /// `az://`, `abfs://` or `abfss://`.
    Azure,
}

/// A parsed `LAKE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeUrl {
    raw: String,
    kind: LakeKind,
}

impl LakeUrl {
    /// Parses `url`; the error names the variable and its flag.
    pub fn parse(url: &str) -> Result<LakeUrl, String> {
        let kind = match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).as_deref() {
            None | Some("file") => LakeKind::Local,
            Some("s3" | "s3a") => LakeKind::S3,
            Some("gs") => LakeKind::Gcs,
            Some("az" | "abfs" | "abfss") => LakeKind::Azure,
            Some(other) => {
                return Err(format!(
                    "LAKE_URL (--lake-url) {}: unsupported scheme {other:?} (use a folder, file://, s3://, gs:// or az://)",
                    redact(url)
                ));
            }
        };
        Ok(LakeUrl { raw: url.to_string(), kind })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn kind(&self) -> LakeKind {
        self.kind
    }

    /// A local lake's folder, as given (without `file://`).
    pub fn local_dir(&self) -> Option<&str> {
        (self.kind == LakeKind::Local).then(|| self.raw.strip_prefix("file://").unwrap_or(&self.raw))
    }
}

impl fmt::Display for LakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lake_url_is_parsed_once_into_its_kind() {
        let kind = |u: &str| LakeUrl::parse(u).map(|l| l.kind());
        assert_eq!(kind("./lake"), Ok(LakeKind::Local));
        assert_eq!(LakeUrl::parse("file:///tmp/lake").unwrap().local_dir(), Some("/tmp/lake"));
        assert_eq!(kind("s3://b/lake"), Ok(LakeKind::S3));
        assert_eq!(kind("S3A://b/lake"), Ok(LakeKind::S3));
        assert_eq!(kind("gs://b/lake"), Ok(LakeKind::Gcs));
        assert_eq!(kind("abfss://c@a.dfs.core.windows.net/lake"), Ok(LakeKind::Azure));
        assert_eq!(LakeUrl::parse("s3://b/lake").unwrap().local_dir(), None);
        let e = LakeUrl::parse("ftp://u:secret@h/lake").unwrap_err();
        assert!(e.starts_with("LAKE_URL (--lake-url) ftp://u:***@h/lake") && e.contains("\"ftp\""), "{e}");
    }
}
