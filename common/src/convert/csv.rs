//! CSV records -> Arrow batches: the header check and the row loop.

use std::io::Read;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::columns::{Col, initial_rows};
use super::input::{Limit, RecordMark};
use super::{BATCH_BYTES, BATCH_ROWS, ConvertError};
use crate::catalog::Dataset;
use crate::text;

/// Why the row loop stopped early.
pub(super) enum Stop {
    Convert(ConvertError),
    /// The encoder refused a batch: its own error says why.
    Encoder,
}

impl From<ConvertError> for Stop {
    fn from(e: ConvertError) -> Self {
        Stop::Convert(e)
    }
}

/// A CSV source positioned after its header.
pub(super) struct CsvRows<'a> {
    rdr: csv::Reader<Box<dyn Read + 'a>>,
    mark: RecordMark,
    rec: csv::ByteRecord,
    file: String,
    /// Whether lines end with CRLF: the CSV reader then dates a record
    /// before it has consumed the previous line's `\n`, one line early.
    crlf: bool,
    /// Records read so far (the header included).
    records: u64,
    /// Lines to add to the reader's line of the current record.
    line_fix: u64,
}

/// Bytes looked at to tell CRLF from LF line ends.
const PEEK: usize = 64 * 1024;

impl<'a> CsvRows<'a> {
    /// Reads the header (skipping blank lines) and checks it against the catalog.
    pub(super) fn open(
        ds: &Dataset,
        file: &str,
        mut text: Box<dyn Read + 'a>,
        mark: RecordMark,
    ) -> Result<Self, ConvertError> {
        let mut head = Vec::with_capacity(PEEK);
        (&mut text).take(PEEK as u64).read_to_end(&mut head).map_err(|e| match Limit::of(&e) {
            Some(limit @ Limit::Source(_)) => {
                ConvertError::TooLarge { file: file.to_string(), message: limit.to_string() }
            }
            _ => ConvertError::Source { file: file.to_string(), message: e.to_string() },
        })?;
        let crlf = head.iter().position(|&b| b == b'\n').is_some_and(|i| i > 0 && head[i - 1] == b'\r');
        let text: Box<dyn Read + 'a> = Box::new(std::io::Cursor::new(head).chain(text));
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(ds.delimiter as u8)
            .buffer_capacity(super::input::CSV_BUFFER)
            .from_reader(text);
        let mut me =
            CsvRows { rdr, mark, rec: csv::ByteRecord::new(), file: file.to_string(), crlf, records: 0, line_fix: 0 };
        loop {
            if !me.read()? {
                return Err(ConvertError::Header {
                    file: file.to_string(),
                    dataset: ds.name.clone(),
                    message: "the source is empty (no header)".into(),
                });
            }
            if !me.blank() {
                break;
            }
        }
        check_header(ds, &me.rec).map_err(|message| ConvertError::Header {
            file: file.to_string(),
            dataset: ds.name.clone(),
            message,
        })?;
        Ok(me)
    }

    fn blank(&self) -> bool {
        self.rec.len() == 1 && self.rec[0].trim_ascii().is_empty()
    }

    /// The next record; `false` at the end. A record past the limit names the
    /// line where it starts.
    fn read(&mut self) -> Result<bool, ConvertError> {
        self.line_fix = (self.crlf && self.records > 0) as u64;
        self.records += 1;
        let next_line = self.rdr.position().line();
        let r = self.rdr.read_byte_record(&mut self.rec).map_err(|e| {
            let (line, message) = (e.position().map(|p| p.line()).unwrap_or(next_line), e.to_string());
            match e.into_kind() {
                csv::ErrorKind::Io(io) => match Limit::of(&io) {
                    Some(limit @ Limit::Record(_)) => self.row_err(next_line, 0, "", format!("{limit}")),
                    Some(limit @ Limit::Source(_)) => {
                        ConvertError::TooLarge { file: self.file.clone(), message: limit.to_string() }
                    }
                    None => ConvertError::Source { file: self.file.clone(), message: io.to_string() },
                },
                _ => self.row_err(line, 0, "", message),
            }
        });
        self.mark.reset();
        r
    }

    fn row_err(&self, line: u64, column: usize, name: &str, message: String) -> ConvertError {
        let line = line + self.line_fix;
        ConvertError::Row { file: self.file.clone(), line, column, name: text::bounded(name, 200), message }
    }

    /// Converts every row, handing a batch to `emit` each [`BATCH_ROWS`] rows
    /// or [`BATCH_BYTES`] bytes; returns the row count.
    pub(super) fn run(
        &mut self,
        ds: &Dataset,
        schema: &SchemaRef,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<u64, Stop> {
        let ncols = ds.columns.len();
        let names: Vec<String> = ds.columns.iter().map(Dataset::output_name).collect();
        let nullable: Vec<bool> = ds.columns.iter().map(|c| c.nullable).collect();
        let reserve = initial_rows(ncols + ds.derived.len());
        let mut cols: Vec<Col> = ds.columns.iter().map(|c| Col::new(c.ty, c.format.as_deref(), reserve)).collect();
        let derived_idx: Vec<Vec<usize>> = ds
            .derived
            .iter()
            .map(|d| {
                d.from
                    .iter()
                    .map(|f| {
                        let named =
                            |c: &crate::catalog::Column| c.source.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(f));
                        ds.columns.iter().position(named).expect("validated")
                    })
                    .collect()
            })
            .collect();
        let mut derived: Vec<Col> = ds.derived.iter().map(|d| Col::new(d.ty, Some(&d.format), reserve)).collect();
        let mut joined = Vec::with_capacity(64);
        let (mut rows, mut in_batch, mut batch_bytes) = (0u64, 0usize, 0usize);
        let file = self.file.clone();
        let mut flush = |cols: &mut Vec<Col>, derived: &mut Vec<Col>| -> Result<(), Stop> {
            let arrays: Vec<ArrayRef> = cols.iter_mut().chain(derived.iter_mut()).map(Col::finish).collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)
                .map_err(|e| ConvertError::Output { file: file.clone(), message: e.to_string() })?;
            if emit(batch) { Ok(()) } else { Err(Stop::Encoder) }
        };

        while self.read()? {
            let line = self.rec.position().map(|p| p.line()).unwrap_or(0);
            let n = self.rec.len();
            if self.blank() {
                continue;
            }
            if n < ncols {
                let m = format!("the row has {n} fields, the header has {ncols} (truncated record?)");
                return Err(self.row_err(line, n + 1, &names[n], m).into());
            }
            if n > ncols
                && let Some(extra) = (ncols..n).find(|&i| !self.rec[i].trim_ascii().is_empty())
            {
                let m = format!("the row has {n} fields, the header has {ncols}");
                return Err(self.row_err(line, extra + 1, "(beyond the header)", m).into());
            }
            for (i, col) in cols.iter_mut().enumerate() {
                col.push(&self.rec[i], nullable[i]).map_err(|m| self.row_err(line, i + 1, &names[i], m))?;
            }
            for (j, col) in derived.iter_mut().enumerate() {
                joined.clear();
                let mut all_empty = true;
                for (k, &i) in derived_idx[j].iter().enumerate() {
                    if k > 0 {
                        joined.push(b' ');
                    }
                    let f = self.rec[i].trim_ascii();
                    all_empty &= f.is_empty();
                    joined.extend_from_slice(f);
                }
                let v: &[u8] = if all_empty { b"" } else { &joined };
                col.push(v, true).map_err(|m| {
                    let d = &ds.derived[j];
                    let m = format!("{m} ({} from {})", col.type_name(), d.from.join("+"));
                    self.row_err(line, derived_idx[j][0] + 1, &d.name, m)
                })?;
            }
            rows += 1;
            in_batch += 1;
            batch_bytes += self.rec.as_slice().len();
            if in_batch == BATCH_ROWS || batch_bytes >= BATCH_BYTES {
                flush(&mut cols, &mut derived)?;
                (in_batch, batch_bytes) = (0, 0);
            }
        }
        if in_batch > 0 || rows == 0 {
            flush(&mut cols, &mut derived)?;
        }
        Ok(rows)
    }
}

/// A header name for a message: trimmed, bounded, and visible when empty.
fn shown(name: &str, position: usize) -> String {
    if name.is_empty() { format!("\"\" (empty name, position {position})") } else { text::bounded(name, 100) }
}

/// Compares the header with the catalog; the message names the differences.
fn check_header(ds: &Dataset, header: &csv::ByteRecord) -> Result<(), String> {
    let mut found: Vec<String> =
        header.iter().map(|h| String::from_utf8_lossy(h).trim().trim_start_matches('\u{feff}').to_string()).collect();
    while found.last().is_some_and(|h| h.is_empty()) {
        found.pop();
    }
    // A CSV column always has a source name (validated); aliases are accepted at its position.
    let accepted: Vec<Vec<&str>> = (0..ds.columns.len()).map(|i| ds.accepted_names(i, None)).collect();
    let expected: Vec<&str> = accepted.iter().map(|names| names.first().copied().unwrap_or_default()).collect();
    let same = found.len() == expected.len()
        && found.iter().zip(&accepted).all(|(a, names)| names.iter().any(|b| a.eq_ignore_ascii_case(b)));
    if same {
        return Ok(());
    }
    let known = |x: &str| accepted.iter().flatten().any(|h| h.eq_ignore_ascii_case(x));
    let missing: Vec<&str> = accepted
        .iter()
        .filter(|names| !names.iter().any(|n| found.iter().any(|h| h.eq_ignore_ascii_case(n))))
        .map(|names| names[0])
        .collect();
    if missing.len() == accepted.len() && found.len() > 1 {
        // Not a header at all: data, or another layout (the MTA's pre-2014 files have no header).
        let note = ds.before_first_note.as_deref().map(|n| format!(" Note: {n}.")).unwrap_or_default();
        return Err(format!(
            "the first line is not {}'s header: it has none of its {} column names ({} fields, starting {}), so the file is in another layout.{note}",
            ds.name,
            accepted.len(),
            found.len(),
            text::quote(found.join(",").as_bytes()),
        ));
    }
    let added: Vec<String> =
        found.iter().enumerate().filter(|(_, f)| !known(f)).map(|(i, f)| shown(f, i + 1)).collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing column(s) {}", missing.join(", ")));
    }
    if !added.is_empty() {
        let more = if added.len() > 20 { format!(" and {} more", added.len() - 20) } else { String::new() };
        parts.push(format!("unexpected column(s) {}{more}", added[..added.len().min(20)].join(", ")));
    }
    if parts.is_empty() {
        parts.push("columns in a different order".into());
    }
    let found_list = text::bounded(&found.join(","), 600);
    Err(format!("{}; expected [{}], found [{found_list}]", parts.join("; "), expected.join(",")))
}
