//! The Parquet encoder: its own thread, fed Arrow batches through a bounded
//! channel, so that parsing and encoding overlap on two cores while memory
//! stays bounded (one or two batches in the channel, one row group in the writer).

use std::io::Write;
use std::thread::{Scope, ScopedJoinHandle};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{ConvertError, DICTIONARY_PAGE_LIMIT, ROW_GROUP_BYTES, ROW_GROUP_ROWS, ZSTD_LEVEL};

/// Messages to the encoder thread.
enum Encode {
    Batch(RecordBatch),
    Finish(Vec<KeyValue>),
}

/// The sending side of the encoder thread.
pub(super) struct Encoder<'scope> {
    tx: std::sync::mpsc::SyncSender<Encode>,
    thread: ScopedJoinHandle<'scope, Result<(), ParquetError>>,
    file: String,
}

/// Above this many columns, dictionary encoding is off and pages are
/// compressed with LZ4 (raw) instead of zstd: each column's dictionary
/// encoder holds tens of kilobytes, and each column's zstd codec a
/// compression and a decompression context, which a 10,000-column schema
/// multiplies into hundreds of megabytes; LZ4 keeps no state between pages.
pub(super) const WIDE_COLUMNS: usize = 1_000;

/// The writer's settings. Text columns get no min/max statistics: comparing
/// every value twice cost 10% of a conversion (MTA week, `perf`), and a row
/// group of half a million rows spans nearly every station or code anyway,
/// so their min/max would prune nothing. Numbers, dates and timestamps (what
/// queries filter ranges on) keep theirs.
///
/// Timestamps that outgrow their dictionary (trip times: nearly every value
/// distinct) fall back to DELTA_BINARY_PACKED instead of plain pages: trips
/// come in time order, so the deltas are small (TLC month: the two time
/// columns 17% smaller). Few distinct times (MTA's 4-hourly readings) stay
/// dictionary-encoded.
pub(crate) fn properties(schema: &arrow_schema::Schema) -> WriterProperties {
    let ncols = schema.fields().len();
    let mut b = WriterProperties::builder();
    for f in schema.fields() {
        let path = || ColumnPath::from(f.name().as_str());
        match f.data_type() {
            arrow_schema::DataType::Utf8 => b = b.set_column_statistics_enabled(path(), EnabledStatistics::None),
            arrow_schema::DataType::Timestamp(..) => b = b.set_column_encoding(path(), Encoding::DELTA_BINARY_PACKED),
            _ => {}
        }
    }
    let wide = ncols > WIDE_COLUMNS;
    let compression = match wide {
        false => Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).expect("valid level")),
        true => Compression::LZ4_RAW,
    };
    b.set_dictionary_enabled(!wide)
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
        .set_created_by(format!("lakefleet {}", crate::VERSION))
        .build()
}

impl<'scope> Encoder<'scope> {
    /// Starts the encoder thread writing to `output`; `depth` batches may
    /// wait in its channel (each one is memory held).
    /// Each batch becomes `out`'s (microsecond timestamps, instants) on the
    /// encoder thread, then is written.
    pub(super) fn spawn<'env, W: Write + Send + 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        out: super::instants::Instants,
        output: W,
        file: &str,
        depth: usize,
    ) -> Encoder<'scope> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Encode>(depth);
        let thread = scope.spawn(move || -> Result<(), ParquetError> {
            let schema = out.schema();
            let props = properties(&schema);
            let mut writer = ArrowWriter::try_new(output, schema, Some(props))?;
            for msg in rx {
                match msg {
                    Encode::Batch(b) => {
                        writer.write(&out.apply(b)?)?;
                        // Wide or long rows: end the row group by size too.
                        if writer.in_progress_size() > ROW_GROUP_BYTES {
                            writer.flush()?;
                        }
                    }
                    Encode::Finish(kvs) => {
                        for kv in kvs {
                            writer.append_key_value_metadata(kv);
                        }
                        writer.close()?;
                        return Ok(());
                    }
                }
            }
            Err(ParquetError::General("conversion stopped before the end".into()))
        });
        Encoder { tx, thread, file: file.to_string() }
    }

    /// Hands a batch over; `false` when the encoder has stopped (its error
    /// is then [`failed`](Self::failed)).
    pub(super) fn send(&self, batch: RecordBatch) -> bool {
        self.tx.send(Encode::Batch(batch)).is_ok()
    }

    /// Writes the footer with `metadata` and waits for the file to be complete.
    pub(super) fn finish(self, metadata: Vec<KeyValue>) -> Result<(), ConvertError> {
        let _ = self.tx.send(Encode::Finish(metadata));
        drop(self.tx);
        match self.thread.join() {
            Ok(Ok(())) => Ok(()),
            r => Err(Self::error(&self.file, r)),
        }
    }

    /// The error the encoder stopped with.
    pub(super) fn failed(self) -> ConvertError {
        drop(self.tx);
        Self::error(&self.file, self.thread.join())
    }

    fn error(file: &str, joined: std::thread::Result<Result<(), ParquetError>>) -> ConvertError {
        let message = match joined {
            Ok(Err(e)) => e.to_string(),
            _ => "the Parquet encoder stopped".into(),
        };
        ConvertError::Output { file: file.to_string(), message }
    }
}
