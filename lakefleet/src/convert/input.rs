//! Source setup: the raw bytes are hashed and counted as they pass, gzip is
//! decoded when the bytes say so (every member of a multi-member file), and
//! the decoded text is guarded: a source larger than its `max_source_bytes`
//! stops the read with a [`Limit`] error instead of growing memory (the
//! record limit is the splitter's, which owns the text buffer).

use std::io::{BufRead, BufReader, Read};

use sha2::{Digest, Sha256};

/// Reader that hashes and counts what passes through it.
pub(super) struct Hashing<R> {
    inner: R,
    sha: Sha256,
    pub(super) bytes: u64,
}

impl<R: Read> Hashing<R> {
    pub(super) fn new(inner: R) -> Self {
        Hashing { inner, sha: Sha256::new(), bytes: 0 }
    }

    /// Reads what is left (the checksum covers every source byte, even past
    /// the last record) and returns the hex SHA-256.
    pub(super) fn finish(&mut self) -> std::io::Result<String> {
        std::io::copy(self, &mut std::io::sink())?;
        Ok(hex::encode(std::mem::take(&mut self.sha).finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The decoded source went past `max_source_bytes` (this many bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limit(pub(super) u64);

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} bytes (max_source_bytes; CSV: once decompressed)", self.0)
    }
}

impl std::error::Error for Limit {}

impl Limit {
    /// The limit behind an I/O error, if that is what it is.
    pub(super) fn of(e: &std::io::Error) -> Option<Limit> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Limit>()).copied()
    }
}

/// Counts the decoded bytes; past `max_source`, reads fail with [`Limit`].
pub(super) struct Guarded<R> {
    inner: R,
    total: u64,
    max_source: u64,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.total > self.max_source {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, Limit(self.max_source)));
        }
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        Ok(n)
    }
}

/// The decoded, guarded text of a source.
pub(super) fn open<'a, R: Read + 'a>(raw: R, max_source: u64) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let gz = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let text: Box<dyn Read + 'a> = if gz {
        Box::new(BufReader::with_capacity(256 * 1024, flate2::bufread::MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };
    Ok(Box::new(Guarded { inner: text, total: 0, max_source }))
}

/// Copies the raw bytes of a source to `path` (at most `max` bytes, else a
/// [`Limit`] error), hashing them on the way; returns the file,
/// rewound, its size and its hex SHA-256.
pub(super) fn spool<R: Read>(
    input: R,
    path: &std::path::Path,
    max: u64,
) -> std::io::Result<(std::fs::File, u64, String)> {
    use std::io::{Seek, Write};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    let mut hashing = Hashing::new(input.take(max + 1));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut file);
    std::io::copy(&mut hashing, &mut out)?;
    out.flush()?;
    drop(out);
    if hashing.bytes > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, Limit(max)));
    }
    let bytes = hashing.bytes;
    let sha = hashing.finish()?;
    file.rewind()?;
    Ok((file, bytes, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_source_stops_the_read() {
        let data = vec![b'x'; 4 << 20];
        let mut r = open(&data[..], 1 << 20).unwrap();
        let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert_eq!(Limit::of(&e), Some(Limit(1 << 20)));
        let mut r = open(&data[..], 8 << 20).unwrap();
        assert_eq!(std::io::copy(&mut r, &mut std::io::sink()).unwrap(), 4 << 20);
    }
}
