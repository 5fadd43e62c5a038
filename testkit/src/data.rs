//! Seeded data: MTA weeks, and the helpers that read what landed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_array::RecordBatch;
use chrono::NaiveDate;

use crate::*;

// ---------------------------------------------------------------- data

/// A small seeded PRNG (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const MTA_HEADER: &str = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS                                                               ";

/// A weekly MTA turnstile file in the real layout: returns the bytes and the sum of ENTRIES.
pub fn mta_week(week: NaiveDate, rows: usize, seed: u64) -> (Vec<u8>, i64) {
    let stations = [
        ("59 ST", "NQR456W", "BMT"),
        ("B'WAY-LAFAYETTE", "BDFQ6", "IND"),
        ("LEXINGTON AV/53", "EM6", "IND"),
        ("ST. GEORGE", "1", "SRT"),
        ("GRD CNTRL-42 ST", "4567S", "IRT"),
        ("125 ST", "456", "IRT"),
    ];
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(rows * 100);
    out.push_str(MTA_HEADER);
    out.push('\n');
    let mut sum = 0i64;
    for i in 0..rows {
        let (st, lines, div) = stations[rng.below(stations.len() as u64) as usize];
        let day = week - chrono::Days::new(6 - (i as u64 % 7));
        let entries = rng.below(3_500_000_000) as i64; // beyond Int32
        let exits = rng.below(2_000_000) as i64;
        sum += entries;
        let desc = if rng.below(10) == 0 { "RECOVR AUD" } else { "REGULAR" };
        out.push_str(&format!(
            "A{:03},R{:03},02-00-{:02},{st},{lines},{div},{},{:02}:00:00,{desc},{entries},{exits}\n",
            rng.below(999),
            rng.below(999),
            rng.below(8),
            day.format("%m/%d/%Y"),
            (i % 6) * 4
        ));
    }
    (out.into_bytes(), sum)
}

/// A date literal.
pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The `i`-th Saturday from 2022-01-01.
pub fn week(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap() + chrono::Days::new(7 * i)
}

/// Serves weeks `0..n` of `rows` rows (seeds from `seed`), each answering
/// with `faults` first; returns what the oracle expects in the lake.
pub fn serve_mta_weeks(src: &Source, n: u64, rows: usize, seed: u64, faults: &[Fault]) -> Vec<(String, usize, String)> {
    (0..n)
        .map(|i| {
            let (bytes, _) = mta_week(week(i), rows, seed + i);
            src.put(&mta_name(week(i)), bytes.clone());
            src.fault(&mta_name(week(i)), faults);
            mta_expect(week(i), rows, &bytes)
        })
        .collect()
}

/// Waits (bounded) until the worker has at least `n` tasks in flight.
pub async fn wait_in_flight(w: &WorkerProc, n: f64) {
    eventually(Duration::from_secs(10), "tasks in flight", || async {
        metric(&w.metrics().await, "lakefleet_tasks_in_flight", &[]) >= n
    })
    .await;
}

pub fn mta_name(week: NaiveDate) -> String {
    format!("turnstile_{}.txt", week.format("%y%m%d"))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// All batches of a Parquet file, and its key-value metadata.
pub fn read_parquet(data: bytes::Bytes) -> (Vec<RecordBatch>, HashMap<String, String>) {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (batches, kv)
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

pub fn sum_i64(batches: &[RecordBatch], col: &str) -> i64 {
    batches
        .iter()
        .map(|b| {
            let a = b.column_by_name(col).unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            a.iter().flatten().sum::<i64>()
        })
        .sum()
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join("lakefleet-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
