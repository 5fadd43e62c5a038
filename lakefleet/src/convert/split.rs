//! CSV text -> records, a buffer at a time. Lines without a quote take a
//! fast path (one SIMD scan for the delimiter, the line end and the quote,
//! fields are ranges into the buffer, nothing is copied); a record with a
//! quote is parsed byte by byte (RFC 4180: `""` inside quotes, line breaks
//! inside quotes) into a scratch buffer. The records of one fill are handed
//! over together as a [`Chunk`], which the converter reads column by column.
//!
//! Memory: the buffer holds one fill ([`FILL`] bytes) and grows only for a
//! record longer than that, up to the dataset's `max_record_bytes`; past it
//! the record is refused, naming its line.

use std::io::Read;

use crate::util::swar::{ONES, zero_bytes};

/// Bytes read per fill (the chunk's text).
pub(super) const FILL: usize = 256 * 1024;

/// Marks a field range that points into the chunk's scratch buffer (a
/// quoted field, unescaped) instead of the text buffer.
const SCRATCH: u32 = 1 << 31;

/// Why splitting stopped.
#[derive(Debug)]
pub(super) enum SplitError {
    /// The source could not be read (the error says why: a limit, a cut download).
    Io(std::io::Error),
    /// A record longer than `max_record_bytes`, starting at `line`.
    TooLong { line: u64, max: u64 },
    /// A quoted field that never closes, starting at `line`.
    Unterminated { line: u64 },
}

/// The records of one buffer fill: `width` field ranges per row (fields past
/// `width` are dropped, missing ones are a [`Ragged`] stop), and the
/// physical line each row starts on.
#[derive(Default)]
pub(super) struct Chunk {
    width: usize,
    bounds: Vec<(u32, u32)>,
    lines: Vec<u64>,
    /// Bytes of each row in the source, for batch sizing.
    pub(super) bytes: usize,
    scratch: Vec<u8>,
}

/// A row whose field count does not fit the header: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ragged {
    pub(super) line: u64,
    /// Fields the row has.
    pub(super) fields: usize,
    /// The first non-empty field past the header's width (0-based), if the
    /// row is too long; `None` if it is too short.
    pub(super) extra: Option<usize>,
}

impl Chunk {
    pub(super) fn rows(&self) -> usize {
        self.lines.len()
    }

    pub(super) fn line(&self, row: usize) -> u64 {
        self.lines[row]
    }

    /// Where field `col` of `row` is in the splitter's buffer, unless it is
    /// a quoted field (then in the scratch buffer: use [`field`](Self::field)).
    #[inline]
    pub(super) fn text_range(&self, row: usize, col: usize) -> Option<(usize, usize)> {
        let (s, e) = self.bounds[row * self.width + col];
        (s & SCRATCH == 0).then_some((s as usize, e as usize))
    }

    /// Field `col` of `row`; `text` is the splitter's buffer ([`Splitter::text`]).
    #[inline]
    pub(super) fn field<'t>(&'t self, text: &'t [u8], row: usize, col: usize) -> &'t [u8] {
        resolve(text, &self.scratch, self.bounds[row * self.width + col])
    }
}

/// The bytes of a field range: in the buffer `text`, or in `scratch` when
/// flagged [`SCRATCH`] (a quoted field, unescaped).
#[inline(always)]
fn resolve<'t>(text: &'t [u8], scratch: &'t [u8], (s, e): (u32, u32)) -> &'t [u8] {
    match s & SCRATCH {
        0 => &text[s as usize..e as usize],
        _ => &scratch[(s & !SCRATCH) as usize..(e & !SCRATCH) as usize],
    }
}

/// Splits a text into records.
pub(super) struct Splitter<'a> {
    src: Box<dyn Read + 'a>,
    buf: Vec<u8>,
    /// Unread text is `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    delim: u8,
    /// Physical line (1-based) of the text at `pos`.
    line: u64,
    max_record: u64,
}

/// The outcome of splitting one record at the start of a text.
enum One {
    /// A record: bytes consumed (its line end included) and line breaks in it.
    Done { len: usize, newlines: u64 },
    /// The text ends inside the record.
    Incomplete,
}

impl<'a> Splitter<'a> {
    pub(super) fn new(src: Box<dyn Read + 'a>, delim: u8, max_record: u64) -> Splitter<'a> {
        Splitter { src, buf: vec![0; FILL], pos: 0, end: 0, eof: false, delim, line: 1, max_record }
    }

    /// The text the last chunk's field ranges point into.
    pub(super) fn text(&self) -> &[u8] {
        &self.buf
    }

    /// Moves the unread text to the front and reads until the buffer is
    /// full or the source ends (which then gets a final line end if it has none).
    fn fill(&mut self) -> Result<(), SplitError> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.end == self.buf.len() {
            // One record fills the whole buffer: grow, within the record limit.
            if self.end as u64 > self.max_record {
                return Err(SplitError::TooLong { line: self.line, max: self.max_record });
            }
            let grown = (self.buf.len() * 2).min(self.max_record as usize + FILL);
            self.buf.resize(grown, 0);
        }
        while !self.eof && self.end < self.buf.len() {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    if self.end > 0 && self.buf[self.end - 1] != b'\n' {
                        if self.end == self.buf.len() {
                            self.buf.push(b'\n');
                        } else {
                            self.buf[self.end] = b'\n';
                        }
                        self.end += 1;
                    }
                }
                Ok(n) => {
                    if self.line == 1 && self.end == 0 && self.buf[..n].starts_with(b"\xef\xbb\xbf") {
                        // A UTF-8 byte order mark is not part of the first name.
                        self.buf.copy_within(3..n, 0);
                        self.end += n - 3;
                    } else {
                        self.end += n;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SplitError::Io(e)),
            }
        }
        Ok(())
    }

    /// The next non-blank record, every field owned (the header); `None` at the end.
    pub(super) fn header(&mut self) -> Result<Option<Vec<Vec<u8>>>, SplitError> {
        let (mut rec, mut scratch) = (Vec::new(), Vec::new());
        loop {
            if !self.one(&mut rec, &mut scratch)? {
                return Ok(None);
            }
            if self.is_blank(&rec) {
                continue;
            }
            return Ok(Some(rec.iter().map(|&r| resolve(&self.buf, &scratch, r).to_vec()).collect()));
        }
    }

    /// A record that is one unquoted field of spaces (a blank line).
    fn is_blank(&self, rec: &[(u32, u32)]) -> bool {
        matches!(rec, [(s, e)] if s & SCRATCH == 0 && self.buf[*s as usize..*e as usize].trim_ascii().is_empty())
    }

    /// Splits one record into `rec` (quoted fields into `scratch`), filling
    /// the buffer as needed; `false` at the end of the text.
    fn one(&mut self, rec: &mut Vec<(u32, u32)>, scratch: &mut Vec<u8>) -> Result<bool, SplitError> {
        loop {
            scratch.clear();
            rec.clear();
            match split_one(&self.buf[self.pos..self.end], self.pos as u32, self.delim, rec, scratch) {
                One::Done { len, newlines } => {
                    self.check_len(len, self.line)?;
                    self.pos += len;
                    self.line += newlines;
                    return Ok(true);
                }
                One::Incomplete if self.eof && self.pos < self.end => {
                    return Err(SplitError::Unterminated { line: self.line });
                }
                One::Incomplete if self.eof => return Ok(false),
                One::Incomplete => self.fill()?,
            }
        }
    }

    fn check_len(&self, len: usize, line: u64) -> Result<(), SplitError> {
        if len as u64 > self.max_record + 2 {
            return Err(SplitError::TooLong { line, max: self.max_record });
        }
        Ok(())
    }

    /// Splits the records of the next fill into `chunk` (cleared first), at
    /// most `max_rows`. `Ok(false)` at the end of the text. A row with fewer
    /// fields than `width`, or a non-empty field past it, ends the chunk
    /// before it and is returned in `ragged` (the rows before it are still
    /// to be converted).
    pub(super) fn chunk(
        &mut self,
        chunk: &mut Chunk,
        width: usize,
        max_rows: usize,
        ragged: &mut Option<Ragged>,
    ) -> Result<bool, SplitError> {
        chunk.width = width;
        chunk.bounds.clear();
        chunk.lines.clear();
        chunk.scratch.clear();
        chunk.bytes = 0;
        if self.eof && self.pos == self.end {
            return Ok(false);
        }
        while chunk.lines.len() < max_rows {
            // The record's fields go straight into the chunk, cut back if it is skipped.
            let mark = chunk.bounds.len();
            let text = &self.buf[self.pos..self.end];
            let (len, newlines) =
                match split_one(text, self.pos as u32, self.delim, &mut chunk.bounds, &mut chunk.scratch) {
                    One::Done { len, newlines } => (len, newlines),
                    One::Incomplete if self.eof && self.pos < self.end && chunk.lines.is_empty() => {
                        return Err(SplitError::Unterminated { line: self.line });
                    }
                    One::Incomplete if chunk.lines.is_empty() && !self.eof => {
                        // Not one whole record in the buffer: read more (or grow).
                        chunk.bounds.truncate(mark);
                        chunk.scratch.clear();
                        self.fill()?;
                        continue;
                    }
                    One::Incomplete => {
                        chunk.bounds.truncate(mark);
                        break;
                    }
                };
            let line = self.line;
            self.check_len(len, line)?;
            let rec = &chunk.bounds[mark..];
            let n = rec.len();
            let field_empty = |&r: &(u32, u32)| resolve(&self.buf, &chunk.scratch, r).trim_ascii().is_empty();
            if self.is_blank(rec) {
                chunk.bounds.truncate(mark);
                self.pos += len;
                self.line += newlines;
                continue;
            }
            if n < width {
                *ragged = Some(Ragged { line, fields: n, extra: None });
                chunk.bounds.truncate(mark);
                break;
            }
            if n > width {
                if let Some(k) = rec[width..].iter().position(|b| !field_empty(b)) {
                    *ragged = Some(Ragged { line, fields: n, extra: Some(width + k) });
                    chunk.bounds.truncate(mark);
                    break;
                }
                chunk.bounds.truncate(mark + width);
            }
            chunk.lines.push(line);
            chunk.bytes += len;
            self.pos += len;
            self.line += newlines;
        }
        Ok(true)
    }
}

/// Splits the record at the start of `text` (which starts at `base` in the
/// buffer), appending its fields to `out`; quoted records go through `scratch`. The fast path
/// looks at 8 bytes at a time (SWAR: the delimiter, `\n` and `"` found with
/// integer arithmetic), which beats a SIMD search restarted for every
/// ~100-byte record.
#[inline]
fn split_one(text: &[u8], base: u32, delim: u8, out: &mut Vec<(u32, u32)>, scratch: &mut Vec<u8>) -> One {
    let (d, nl, qu) = (delim as u64 * ONES, b'\n' as u64 * ONES, b'"' as u64 * ONES);
    let mark = out.len();
    let mut start = 0usize;
    let mut at = 0usize;
    loop {
        let (word, valid) = match text.get(at..at + 8) {
            Some(w) => (u64::from_le_bytes(w.try_into().expect("8 bytes")), u64::MAX),
            None if at < text.len() => {
                let mut w = [0u8; 8];
                let n = text.len() - at;
                w[..n].copy_from_slice(&text[at..]);
                (u64::from_le_bytes(w), u64::MAX >> (8 * (8 - n)))
            }
            None => return One::Incomplete,
        };
        let mut m = (zero_bytes(word ^ d) | zero_bytes(word ^ nl) | zero_bytes(word ^ qu)) & valid;
        while m != 0 {
            let i = at + (m.trailing_zeros() / 8) as usize;
            m &= m - 1;
            let b = text[i];
            if b == delim {
                out.push((base + start as u32, base + i as u32));
                start = i + 1;
            } else if b == b'\n' {
                let e = if i > start && text[i - 1] == b'\r' { i - 1 } else { i };
                out.push((base + start as u32, base + e as u32));
                return One::Done { len: i + 1, newlines: 1 };
            } else {
                out.truncate(mark);
                return split_quoted(text, delim, out, scratch);
            }
        }
        at += 8;
    }
}

/// The slow path: a record with quotes, unescaped into `scratch`. A quote
/// opens a quoted field only at a field's start; elsewhere it is text (as
/// the `csv` crate reads it); after a closing quote, text up to the
/// delimiter is kept.
fn split_quoted(text: &[u8], delim: u8, out: &mut Vec<(u32, u32)>, scratch: &mut Vec<u8>) -> One {
    let mut i = 0usize;
    let mut newlines = 0u64;
    loop {
        let start = scratch.len();
        if text.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let Some(q) = memchr::memchr(b'"', &text[i..]).map(|q| i + q) else {
                    return One::Incomplete;
                };
                newlines += memchr::memchr_iter(b'\n', &text[i..q]).count() as u64;
                scratch.extend_from_slice(&text[i..q]);
                match text.get(q + 1) {
                    Some(b'"') => {
                        scratch.push(b'"');
                        i = q + 2;
                    }
                    Some(_) => {
                        i = q + 1;
                        break;
                    }
                    None => return One::Incomplete,
                }
            }
        }
        // Unquoted text (or what follows a closing quote) up to the delimiter or line end.
        let Some(j) = memchr::memchr2(delim, b'\n', &text[i..]).map(|j| i + j) else {
            return One::Incomplete;
        };
        let end = if text[j] == b'\n' && j > i && text[j - 1] == b'\r' { j - 1 } else { j };
        scratch.extend_from_slice(&text[i..end]);
        out.push((SCRATCH | start as u32, SCRATCH | scratch.len() as u32));
        i = j + 1;
        if text[j] == b'\n' {
            return One::Done { len: i, newlines: newlines + 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of `text` (split with `width` fields per row) as strings.
    fn split(text: &str, width: usize) -> (Vec<(u64, Vec<String>)>, Option<Ragged>) {
        let mut s = Splitter::new(Box::new(text.as_bytes()), b',', 1 << 20);
        let mut chunk = Chunk::default();
        let mut ragged = None;
        let mut out = Vec::new();
        while ragged.is_none() && s.chunk(&mut chunk, width, 3, &mut ragged).unwrap() {
            for r in 0..chunk.rows() {
                let f = (0..width).map(|c| String::from_utf8(chunk.field(s.text(), r, c).to_vec()).unwrap());
                out.push((chunk.line(r), f.collect()));
            }
        }
        (out, ragged)
    }

    #[test]
    fn quotes_line_ends_and_blank_lines_are_read_as_the_csv_crate_reads_them() {
        let text = "a,b\r\n\r\n1,\"x,\"\"y\"\"\nz\"\n \n2,plain\"quote\n3,\"q\"tail\n4,last";
        let (rows, ragged) = split(text, 2);
        assert_eq!(ragged, None);
        let want = [
            (1, ["a", "b"]),
            (3, ["1", "x,\"y\"\nz"]),
            (6, ["2", "plain\"quote"]),
            (7, ["3", "qtail"]),
            (8, ["4", "last"]),
        ];
        let got: Vec<(u64, Vec<&str>)> =
            rows.iter().map(|(l, f)| (*l, f.iter().map(String::as_str).collect())).collect();
        let want: Vec<(u64, Vec<&str>)> = want.iter().map(|(l, f)| (*l, f.to_vec())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rows_of_the_wrong_width_stop_the_chunk_where_they_are() {
        let (rows, ragged) = split("a,b\n1,2,,\n3\n", 2);
        assert_eq!(rows.len(), 2);
        assert_eq!(ragged, Some(Ragged { line: 3, fields: 1, extra: None }));
        let (_, ragged) = split("a,b\n1,2,x\n", 2);
        assert_eq!(ragged, Some(Ragged { line: 2, fields: 3, extra: Some(2) }));
    }

    #[test]
    fn records_longer_than_a_fill_grow_the_buffer_up_to_the_limit() {
        let long = "y".repeat(3 * FILL);
        let text = format!("a,b\n1,{long}\n2,z\n");
        let (rows, _) = split(&text, 2);
        assert_eq!(rows[1].1[1].len(), 3 * FILL);
        assert_eq!(rows[2], (3, vec!["2".to_string(), "z".to_string()]));
        let mut s = Splitter::new(Box::new(text.as_bytes()), b',', 100_000);
        let (mut chunk, mut ragged) = (Chunk::default(), None);
        let e = loop {
            match s.chunk(&mut chunk, 2, 10, &mut ragged) {
                Ok(true) => continue,
                Ok(false) => panic!("no limit hit"),
                Err(e) => break e,
            }
        };
        assert!(matches!(e, SplitError::TooLong { line: 2, max: 100_000 }), "{e:?}");
    }

    #[test]
    fn an_unterminated_quote_names_its_line() {
        let mut s = Splitter::new(Box::new(&b"a,b\n1,2\n3,\"open\n"[..]), b',', 1 << 20);
        let (mut chunk, mut ragged) = (Chunk::default(), None);
        assert!(s.chunk(&mut chunk, 2, 10, &mut ragged).unwrap());
        let e = s.chunk(&mut chunk, 2, 10, &mut ragged).unwrap_err();
        assert!(matches!(e, SplitError::Unterminated { line: 3 }), "{e:?}");
    }
}
