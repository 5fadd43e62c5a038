//! Source setup: the raw bytes are hashed and counted as they pass, gzip is
//! decoded when the bytes say so (every member of a multi-member file), and
//! the decoded text is guarded: a record longer than the dataset's
//! `max_record_bytes`, or a source larger than its `max_source_bytes`, stops
//! the read with a [`Limit`] error instead of growing memory.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// Bytes the CSV reader buffers ahead of the record it parses.
pub(super) const CSV_BUFFER: usize = 256 * 1024;

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

/// A limit the source went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// One record (or the header line) is longer than this many bytes.
    Record(u64),
    /// The decoded source is larger than this many bytes.
    Source(u64),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Record(n) => write!(f, "a record longer than {n} bytes (max_record_bytes)"),
            Limit::Source(n) => write!(f, "more than {n} bytes (max_source_bytes; CSV: once decompressed)"),
        }
    }
}

impl std::error::Error for Limit {}

impl Limit {
    /// The limit behind an I/O error, if that is what it is.
    pub(super) fn of(e: &std::io::Error) -> Option<Limit> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Limit>()).copied()
    }
}

/// Counts the decoded bytes read since the last record boundary (which the
/// row loop marks with [`RecordMark::reset`]) and in all.
pub(super) struct Guarded<R> {
    inner: R,
    mark: RecordMark,
    total: u64,
    max_record: u64,
    max_source: u64,
}

/// The row loop's handle on the guard: call `reset` after each record.
#[derive(Clone, Default)]
pub(super) struct RecordMark(Rc<Cell<u64>>);

impl RecordMark {
    pub(super) fn reset(&self) {
        self.0.set(0);
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The CSV reader reads ahead by up to its buffer: allow for it.
        if self.mark.0.get() > self.max_record + CSV_BUFFER as u64 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, Limit::Record(self.max_record)));
        }
        if self.total > self.max_source {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, Limit::Source(self.max_source)));
        }
        let n = self.inner.read(buf)?;
        self.mark.0.set(self.mark.0.get() + n as u64);
        self.total += n as u64;
        Ok(n)
    }
}

/// The decoded, guarded text of a source, and the mark the row loop resets.
pub(super) fn open<'a, R: Read + 'a>(
    raw: R,
    max_record: u64,
    max_source: u64,
) -> std::io::Result<(Box<dyn Read + 'a>, RecordMark)> {
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let gz = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let text: Box<dyn Read + 'a> = if gz {
        Box::new(BufReader::with_capacity(256 * 1024, flate2::bufread::MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };
    let mark = RecordMark::default();
    let guarded = Guarded { inner: text, mark: mark.clone(), total: 0, max_record, max_source };
    Ok((Box::new(guarded), mark))
}

/// Copies the raw bytes of a source to `path` (at most `max` bytes, else a
/// [`Limit::Source`] error), hashing them on the way; returns the file,
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
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, Limit::Source(max)));
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
    fn a_long_record_and_a_large_source_stop_the_read() {
        let data = vec![b'x'; 4 << 20];
        let (mut r, _mark) = open(&data[..], 1024, u64::MAX).unwrap();
        let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert_eq!(Limit::of(&e), Some(Limit::Record(1024)));
        let (mut r, mark) = open(&data[..], 1024, 1 << 20).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let e = loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("no limit hit"),
                Ok(_) => mark.reset(), // as if every read ended a record
                Err(e) => break e,
            }
        };
        assert_eq!(Limit::of(&e), Some(Limit::Source(1 << 20)));
    }
}
