//! The commit loop against a table in a folder: what a worker's view of the
//! log holds after many commits by it and by others.

use super::*;
use crate::catalog::Catalog;
use crate::lake::LakeUrl;

fn partition(ds: &Dataset, p: u64) -> PartitionCommit {
    let date = chrono::NaiveDate::from_ymd_opt(2014, 10, 18).unwrap() + chrono::Days::new(7 * p);
    PartitionCommit {
        partition: date.to_string(),
        key: ds.object_key(date),
        size: 1_000,
        rows: 10,
        generation: 1,
        year: chrono::Datelike::year(&date),
        stats: None,
    }
}

/// A lake in a fresh temporary folder (removed when dropped) and the
/// built-in `mta-turnstile` entry.
struct Folder {
    dir: std::path::PathBuf,
    lake: Lake,
    ds: Dataset,
}

impl Folder {
    fn new(name: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("lakefleet-table-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lake = Lake::open(&LakeUrl::parse(dir.to_str().unwrap()).unwrap()).unwrap();
        Folder { dir, lake, ds: Catalog::builtin().get("mta-turnstile").unwrap().clone() }
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn commits_after_checkpoint(snap: &Snapshot) -> u64 {
    let segment = snap.kernel.as_ref().expect("a table").log_segment();
    segment.end_version - segment.checkpoint_version.unwrap_or(0)
}

/// A worker that commits and a worker that only reads the commits of the
/// other (as each of two workers does of the other's): past a long log, both
/// views start from a recent checkpoint, and both still find every
/// partition's generation.
#[tokio::test(flavor = "multi_thread")]
async fn views_of_a_long_log_start_from_a_recent_checkpoint_and_know_every_partition() {
    let folder = Folder::new("views");
    let lake = &folder.lake;
    let mut ds = folder.ds.clone();
    ds.checkpoint_interval = 10;
    let table = Table::new(lake, &ds);
    let (mut writer, mut reader) = (Snapshot::default(), Snapshot::default());
    let n = LONGEST_LOG_TAIL + 30;
    for p in 0..n {
        let done = table.commit(&mut writer, &partition(&ds, p)).await.unwrap();
        assert_eq!(done, Committed::Written { version: p, attempts: 1 });
        if p % 20 == 0 {
            table.refresh(&mut reader).await.unwrap();
        }
    }
    table.refresh(&mut reader).await.unwrap();
    assert_eq!((writer.version, reader.version), (Some(n - 1), Some(n - 1)));
    // The writer's view starts from the checkpoint it wrote last; the
    // reader's adopted one once its commits grew past the bound.
    assert!(commits_after_checkpoint(&writer) < ds.checkpoint_interval, "{}", commits_after_checkpoint(&writer));
    assert!(commits_after_checkpoint(&reader) <= LONGEST_LOG_TAIL, "{}", commits_after_checkpoint(&reader));
    for p in [0, 1, n / 2, n - 1] {
        let label = partition(&ds, p).partition;
        assert_eq!(table.generation(&writer, &label).await.unwrap(), 1, "{label} in the writer's view");
        assert_eq!(table.generation(&reader, &label).await.unwrap(), 1, "{label} in the reader's view");
    }
    // A partition committed again through the reader's view is found done.
    assert_eq!(
        table.commit(&mut reader, &partition(&ds, 3)).await.unwrap(),
        Committed::AlreadyCommitted { attempts: 1 }
    );
}

/// Workers that read a table for the first time at once all race to write
/// the version's checksum: every one of them still ends with the checksum in
/// its view (one that went on without it looked each `txn` up by replaying
/// the log, and every view built from it after did too).
#[tokio::test(flavor = "multi_thread")]
async fn views_first_read_at_once_all_hold_the_versions_checksum() {
    let folder = Folder::new("crc");
    let lake = &folder.lake;
    let ds = folder.ds.clone();
    for round in 0..4u64 {
        let mut writer = Snapshot::default();
        Table::new(lake, &ds).commit(&mut writer, &partition(&ds, round)).await.unwrap();
        let mut views = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (lake, ds) = (lake.clone(), ds.clone());
            views.spawn(async move {
                let mut view = Snapshot::default();
                Table::new(&lake, &ds).refresh(&mut view).await.unwrap();
                view
            });
        }
        while let Some(view) = views.join_next().await {
            let view = view.unwrap();
            assert_eq!(view.version, Some(round));
            assert!(
                view.kernel.as_ref().unwrap().crc_at_version().is_some(),
                "round {round}: a view without the checksum"
            );
        }
    }
}

/// Two workers committing in turn: once a worker has seen the other's
/// commits come before its own, it reads the log before its first attempt,
/// and its commits land at the first attempt (no write bound to fail).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_commits_in_turn_with_another_reads_the_log_first() {
    let folder = Folder::new("turns");
    let lake = &folder.lake;
    let ds = folder.ds.clone();
    let table = Table::new(lake, &ds);
    let mut views = [Snapshot::default(), Snapshot::default()];
    let mut attempts = Vec::new();
    for p in 0..12u64 {
        match table.commit(&mut views[(p % 2) as usize], &partition(&ds, p)).await.unwrap() {
            Committed::Written { version, attempts: a } => {
                assert_eq!(version, p);
                attempts.push(a);
            }
            other => panic!("{other:?}"),
        }
    }
    // Each view's second commit finds the other's first before it (a lost
    // first attempt); from then on each reads first.
    assert_eq!(attempts[4..], [1; 8], "{attempts:?}");
}

/// The Adds' statistics built without the kernel's JSON parser are the
/// parser's, value for value, in the stats schema of a table whose
/// timestamps are instants and of one that keeps wall-clock times; a form
/// the builder does not know is left to the parser.
#[tokio::test(flavor = "multi_thread")]
async fn stats_built_without_the_parser_are_the_parsers() {
    use crate::catalog::Timestamps;
    for (name, dataset, timestamps) in [
        ("stats-utc", "mta-turnstile", Timestamps::Instant),
        ("stats-ntz", "mta-turnstile", Timestamps::WallClock),
        ("stats-tlc", "nyc-tlc-yellow", Timestamps::Instant),
    ] {
        let folder = Folder::new(name);
        let mut ds = Catalog::builtin().get(dataset).unwrap().clone();
        ds.timestamps = timestamps;
        let table = Table::new(&folder.lake, &ds);
        let mut snap = Snapshot::default();
        table.commit(&mut snap, &partition(&ds, 0)).await.unwrap();
        let engine = folder.lake.kernel().engine();
        let kernel = snap.kernel.clone().unwrap();
        let txn = kernel
            .update_table(UpdateTableOperation::Write, ENGINE_INFO, true)
            .build(engine.as_ref(), Box::new(FileSystemCommitter::new()))
            .unwrap();
        let schema = txn.stats_schema().unwrap();
        let fields = stats::arrow_fields(&schema).unwrap();
        let z = if timestamps == Timestamps::Instant { "Z" } else { "" };
        let rows = vec![
            format!(
                r#"{{"numRecords":200,"minValues":{{"entries":-3,"exits":0,"observed_at":"2022-01-08T05:00:00.000{z}","date":"2022-01-08","_lakefleet_partition":"2022-01-08","trip_distance":0.1,"fare_amount":-52,"pickup_datetime":"2021-12-31T23:59:59.123{z}","year":2022}},"maxValues":{{"entries":2147483648,"exits":17,"observed_at":"2022-07-14T23:59:59.999{z}","date":"2022-07-14","trip_distance":1.7976931348623157e308,"fare_amount":0.30000000000000004}},"nullCount":{{"entries":0,"ca":3,"observed_at":1,"airport_fee":200}}}}"#
            ),
            r#"{"numRecords":10}"#.to_string(),
            r#"{"numRecords":0,"minValues":{},"maxValues":{"entries":null},"nullCount":{"entries":10}}"#.to_string(),
        ];
        let built = stats::to_arrow(&rows, &fields).expect("the builder knows every field of these");
        let strings = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("stats", ArrowType::Utf8, true)])),
            vec![Arc::new(StringArray::from(rows.clone())) as ArrayRef],
        )
        .unwrap();
        let parsed = engine.json_handler().parse_json(Box::new(ArrowEngineData::new(strings)), schema).unwrap();
        let parsed = StructArray::from(ArrowEngineData::try_from_engine_data(parsed).unwrap().record_batch().clone());
        assert_eq!(built.data_type(), parsed.data_type(), "{name}");
        for (i, field) in fields.iter().enumerate() {
            assert_eq!(built.column(i).as_ref(), parsed.column(i).as_ref(), "{name}: {}", field.name());
        }
        // A count given as text: the parser decides.
        let odd = vec![r#"{"numRecords":"1"}"#.to_string()];
        assert!(stats::to_arrow(&odd, &fields).is_none(), "{name}");
    }
}
