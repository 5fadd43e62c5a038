//! CSV records -> Arrow batches: the header check and the row loop. The
//! records come a chunk at a time from the [`Splitter`]; each chunk is
//! converted column by column (one tight loop per column and type), and
//! the first bad value in row order is the one reported.

use std::io::Read;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::columns::{Col, initial_rows};
use super::input::Limit;
use super::split::{Chunk, Ragged, SplitError, Splitter};
use super::{BATCH_BYTES, BATCH_ROWS, ConvertError};
use crate::catalog::Dataset;
use crate::util::text;

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
    split: Splitter<'a>,
    file: String,
}

impl<'a> CsvRows<'a> {
    /// Reads the header (skipping blank lines) and checks it against the catalog.
    pub(super) fn open(ds: &Dataset, file: &str, text: Box<dyn Read + 'a>) -> Result<Self, ConvertError> {
        let mut me = CsvRows { split: Splitter::new(text, ds.delimiter as u8, ds.max_record_bytes), file: file.into() };
        let Some(header) = me.split.header().map_err(|e| me.split_err(e))? else {
            return Err(ConvertError::Header {
                file: file.to_string(),
                dataset: ds.name.clone(),
                message: "the source is empty (no header)".into(),
            });
        };
        check_header(ds, &header).map_err(|message| ConvertError::Header {
            file: file.to_string(),
            dataset: ds.name.clone(),
            message,
        })?;
        Ok(me)
    }

    fn split_err(&self, e: SplitError) -> ConvertError {
        match e {
            SplitError::Io(io) => match Limit::of(&io) {
                Some(limit) => ConvertError::TooLarge { file: self.file.clone(), message: limit.to_string() },
                None => ConvertError::Source { file: self.file.clone(), message: io.to_string() },
            },
            SplitError::TooLong { line, max } => {
                self.row_err(line, 0, "", format!("a record longer than {max} bytes (max_record_bytes)"))
            }
            SplitError::Unterminated { line } => self.row_err(
                line,
                0,
                "",
                "a quoted field that starts on this line never closes (the file ends inside it)".into(),
            ),
        }
    }

    fn row_err(&self, line: u64, column: usize, name: &str, message: String) -> ConvertError {
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
        let mut cols: Vec<Col> =
            ds.columns.iter().map(|c| Col::new(c.ty, c.format.as_deref(), reserve).grouped(c.thousands)).collect();
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
        let mut chunk = Chunk::default();
        let mut ragged: Option<Ragged> = None;
        loop {
            let more = self
                .split
                .chunk(&mut chunk, ncols, BATCH_ROWS - in_batch, &mut ragged)
                .map_err(|e| self.split_err(e))?;
            let n = chunk.rows();
            if n > 0 {
                let text = self.split.text();
                // The first bad value in row order (then column order) is reported.
                let mut first: Option<(usize, usize, String)> = None;
                for (i, col) in cols.iter_mut().enumerate() {
                    if let Err((row, m)) = col.push_chunk(&chunk, text, i, nullable[i])
                        && first.as_ref().is_none_or(|f| (row, i) < (f.0, f.1))
                    {
                        first = Some((row, i, m));
                    }
                }
                'derived: for (j, col) in derived.iter_mut().enumerate() {
                    for row in 0..first.as_ref().map_or(n, |f| f.0 + 1) {
                        joined.clear();
                        let mut all_empty = true;
                        for (k, &i) in derived_idx[j].iter().enumerate() {
                            if k > 0 {
                                joined.push(b' ');
                            }
                            let f = chunk.field(text, row, i).trim_ascii();
                            all_empty &= f.is_empty();
                            joined.extend_from_slice(f);
                        }
                        let v: &[u8] = if all_empty { b"" } else { &joined };
                        if let Err(m) = col.push(v, true) {
                            let d = &ds.derived[j];
                            let m = format!("{m} ({} from {})", col.type_name(), d.from.join("+"));
                            if first.as_ref().is_none_or(|f| row < f.0) {
                                first = Some((row, ncols + j, m));
                            }
                            continue 'derived;
                        }
                    }
                }
                if let Some((row, i, m)) = first {
                    let (column, name) = match i.checked_sub(ncols) {
                        None => (i + 1, names[i].as_str()),
                        Some(j) => (derived_idx[j][0] + 1, ds.derived[j].name.as_str()),
                    };
                    return Err(self.row_err(chunk.line(row), column, name, m).into());
                }
                rows += n as u64;
                in_batch += n;
                batch_bytes += chunk.bytes;
                if in_batch == BATCH_ROWS || batch_bytes >= BATCH_BYTES {
                    flush(&mut cols, &mut derived)?;
                    (in_batch, batch_bytes) = (0, 0);
                }
            }
            if let Some(r) = ragged {
                let (column, name, m) = match r.extra {
                    None => (
                        r.fields + 1,
                        names[r.fields].as_str(),
                        format!("the row has {} fields, the header has {ncols} (truncated record?)", r.fields),
                    ),
                    Some(k) => (
                        k + 1,
                        "(beyond the header)",
                        format!("the row has {} fields, the header has {ncols}", r.fields),
                    ),
                };
                return Err(self.row_err(r.line, column, name, m).into());
            }
            if !more {
                break;
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
fn check_header(ds: &Dataset, header: &[Vec<u8>]) -> Result<(), String> {
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
