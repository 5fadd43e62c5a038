//! Socrata slices against a SODA-compatible portal served by the test:
//! counted, paged, checked, retried when they change or are throttled, parked
//! with the portal's message when refused; the app token reaches the portal
//! and no log line.

use std::time::Duration;

use arrow_array::cast::AsArray;
use lakefleet_testkit::soda::{Soda, SodaData};
use lakefleet_testkit::*;

const FIELDS: [&str; 12] = [
    "transit_timestamp",
    "transit_mode",
    "station_complex_id",
    "station_complex",
    "borough",
    "payment_method",
    "fare_class_category",
    "ridership",
    "transfers",
    "latitude",
    "longitude",
    "georeference",
];
const TOKEN: &str = "app-token-s3cr3t-9f1c";

/// `n` hourly ridership rows of `month` (`2024-12`), and their ridership sum.
/// Socrata numbers: some whole values come as `12.0`, and row 7 of a month
/// has a fraction (`.5`), which lands as it is.
fn ridership(month: &str, n: usize) -> (Vec<Vec<String>>, f64) {
    let start =
        chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap();
    let mut sum = 0.0;
    let rows = (0..n)
        .map(|i| {
            let ts = start + chrono::Duration::hours((i / 100) as i64);
            let whole = (i * 7) % 50;
            let riders = match i % 10 {
                3 => format!("{whole}.0"),
                _ if i == 7 => format!("{whole}.5"),
                _ => whole.to_string(),
            };
            sum += riders.parse::<f64>().unwrap();
            let station = if i % 100 == 42 {
                "Times Sq-42 St (N,Q,R,W,S,1,2,3,7) \"A\"".to_string()
            } else {
                format!("Station {}", i % 100)
            };
            vec![
                ts.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                "subway".into(),
                (i % 100).to_string(),
                station,
                ["Manhattan", "Brooklyn", "Queens", "Bronx"][i % 4].into(),
                ["metrocard", "omny"][i % 2].into(),
                "Metrocard - Full Fare".into(),
                riders,
                (i % 3).to_string(),
                "40.7527".into(),
                "-73.9772".into(),
                "POINT (-73.9772 40.7527)".into(),
            ]
        })
        .collect();
    (rows, sum)
}

fn data(rows: Vec<Vec<String>>) -> SodaData {
    SodaData { fields: FIELDS.iter().map(|f| f.to_string()).collect(), time_field: "transit_timestamp".into(), rows }
}

fn key(month: &str) -> String {
    format!("mta-subway-hourly-ridership/year={}/mta-subway-hourly-ridership_{month}.parquet", &month[..4])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monthly_backfill_lands_every_slice_once_with_exactly_the_counted_rows() {
    let soda = Soda::start().await;
    let mut f = Fleet::local("socrata");
    f.env.push(("SOCRATA_APP_TOKEN".into(), TOKEN.into()));
    // The built-in dataset is split across two ids at 2025-01, as on data.ny.gov.
    let months = [("2024-11", 500), ("2024-12", 60_000), ("2025-01", 800), ("2025-02", 900)];
    let mut old = Vec::new();
    let mut new = Vec::new();
    let mut sums = Vec::new();
    for (m, n) in months {
        let (rows, sum) = ridership(m, n);
        sums.push(sum);
        if m < "2025" { old.extend(rows) } else { new.extend(rows) }
    }
    soda.put("wujg-7c2s", data(old));
    soda.put("5wq4-mkjj", data(new));
    // Throttled once; and 2025-02 gains a row between its count and its pages.
    soda.fail_next("5wq4-mkjj", 429, Some(1));
    let (late, _) = ridership("2025-02", 1);
    let mut late = late[0].clone();
    late[7] = "1000".into();
    soda.grow_after_count("5wq4-mkjj", "2025-02-01T00:00:00", late);

    let workers = [f.worker(&[]), f.worker(&[])];
    for w in &workers {
        w.ready().await;
    }
    let out = f.backfill("mta-subway-hourly-ridership", "2024-11-01", "2025-02-28", &["--mirror", &soda.base]);
    assert_eq!(out.status.code(), Some(0));
    let s = wait_finished(&f, &out, Duration::from_secs(90)).await;
    assert_eq!((s.done, s.parked.len()), (4, 0), "{s:?}");
    assert!(s.retried >= 2, "the 429 and the changed slice were retried: {s:?}");

    let objects = f.objects().await;
    assert_eq!(objects.len(), 4, "each slice once: {objects:?}");
    for (k, (m, n)) in months.iter().enumerate() {
        let (batches, _) = read_parquet(f.read_object(&key(m)).await);
        let (want_rows, want_sum) = if *m == "2025-02" { (n + 1, sums[k] + 1000.0) } else { (*n, sums[k]) };
        assert_eq!(rows(&batches), want_rows, "{m}");
        let got: f64 = batches
            .iter()
            .map(|b| b.column_by_name("ridership").unwrap().as_primitive::<arrow_array::types::Float64Type>())
            .flat_map(|a| a.iter().flatten().collect::<Vec<_>>())
            .sum();
        assert_eq!(got, want_sum, "{m}: whole values, `12.0` and a fraction land as they are");
        assert_eq!(
            batches[0].num_columns(),
            12,
            "georeference is not selected (11 columns, then _lakefleet_partition)"
        );
    }
    let (batches, _) = read_parquet(f.read_object(&key("2024-11")).await);
    let station = batches[0].column_by_name("station_complex").unwrap().as_string::<i32>().value(42).to_string();
    assert_eq!(station, "Times Sq-42 St (N,Q,R,W,S,1,2,3,7) \"A\"");
    let ts = ny_wall_millis(batches[0].column_by_name("transit_timestamp").unwrap());
    assert_eq!(lakefleet::util::timefmt::millis_to_string(ts[100].unwrap()), "2024-11-01 01:00:00");

    // Paged: the 60,000-row slice took two pages of 50,000 in :id order.
    let reqs = soda.requests();
    let paged = |r: &lakefleet_testkit::soda::SodaRequest| {
        r.target.contains("%24offset=50000") && r.target.contains("%24order=%3Aid")
    };
    assert!(reqs.iter().any(paged), "{:?}", &reqs[..3]);
    // The 429 said Retry-After: 1; the same request came again no sooner.
    let throttled = reqs.iter().find(|r| r.status == 429).expect("a 429 was served");
    let again = reqs.iter().find(|r| r.target == throttled.target && r.at > throttled.at).expect("asked again");
    assert!(again.at - throttled.at >= Duration::from_secs(1), "{:?}", again.at - throttled.at);
    // The token went to every request, and into no log line.
    assert!(reqs.iter().all(|r| r.token.as_deref() == Some(TOKEN)), "every request carries X-App-Token");
    for w in &workers {
        assert!(!w.log().contains(TOKEN), "the token is in a worker log");
    }
    assert!(workers.iter().any(|w| w.log().contains("HTTP 429")), "the throttle is logged");
    assert!(workers.iter().any(|w| w.log().contains("the slice changed while it was read")), "the change is logged");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_id_and_a_rejected_query_park_with_the_portals_message() {
    let soda = Soda::start().await;
    let (rows, _) = ridership("2024-01", 10);
    soda.put("abcd-1234", data(rows));
    let entry = |name: &str, id: &str, time: &str| {
        format!(
            "[[dataset]]\nname = \"{name}\"\ncadence = \"monthly\"\nformat = \"socrata\"\nfirst = \"2024-01-01\"\ncolumns = [ {{ source = \"transit_timestamp\", type = \"timestamp\", format = \"%Y-%m-%dT%H:%M:%S%.f\" }}, {{ source = \"ridership\", type = \"int64\" }} ]\ntime_zone = \"America/New_York\"\n[dataset.socrata]\nportal = \"https://data.example.org\"\ntime_column = \"{time}\"\nids = [ {{ id = \"{id}\", first = \"2024-01-01\" }} ]\n"
        )
    };
    let toml = format!(
        "{}\n{}",
        entry("soda-missing", "zzzz-9999", "transit_timestamp"),
        entry("soda-badcol", "abcd-1234", "nope")
    );
    let f = Fleet::local("socrata-refused").with_catalog(&toml);
    let w = f.worker(&[]);
    w.ready().await;
    for name in ["soda-missing", "soda-badcol"] {
        let out = f.backfill(name, "2024-01-01", "2024-01-31", &["--mirror", &soda.base]);
        let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
        assert_eq!((s.done, s.parked.len()), (0, 1), "{s:?}");
    }
    let parked = f.parked().await;
    let of = |d: &str| parked.iter().find(|p| p.dataset == d).unwrap_or_else(|| panic!("{d}: {parked:?}"));
    assert_eq!(of("soda-missing").reason, "not_found");
    assert!(of("soda-missing").error.contains("HTTP 404: Dataset zzzz-9999 not found"), "{:?}", of("soda-missing"));
    assert_eq!(of("soda-badcol").reason, "http_error");
    assert!(of("soda-badcol").error.contains("HTTP 400: No such column: nope"), "{:?}", of("soda-badcol"));
    assert!(f.objects().await.is_empty());
    f.cleanup().await;
}

const ARCHIVE_2022: [&str; 11] =
    ["c_a", "unit", "scp", "station", "line_name", "division", "date", "time", "description", "entries", "exits"];

/// `n` turnstile readings (4 a day, every 4 hours) from `first`, as the
/// archive serves them: `date` a floating timestamp at midnight, `time`
/// text; some counters written as `N.0` (Socrata numbers). Their entries sum.
fn archive_rows(first: &str, n: usize) -> (Vec<Vec<String>>, i64) {
    let day0 = chrono::NaiveDate::parse_from_str(first, "%Y-%m-%d").unwrap();
    let mut sum = 0;
    let rows = (0..n)
        .map(|i| {
            let day = day0 + chrono::Days::new((i / 6) as u64 % 7);
            let entries = 6_999_000 + i as i64;
            sum += entries;
            let entries = if i % 5 == 0 { format!("{entries}.0") } else { entries.to_string() };
            vec![
                "A002".into(),
                "R051".into(),
                format!("02-00-{:02}", i % 4),
                "59 ST".into(),
                "NQR456W".into(),
                "BMT".into(),
                day.format("%Y-%m-%dT00:00:00.000").to_string(),
                format!("{:02}:00:00", (i % 6) * 4),
                "REGULAR".into(),
                entries,
                (2_300_000 + i).to_string(),
            ]
        })
        .collect();
    (rows, sum)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_turnstile_archive_lands_2014_and_2022_weeks_in_mta_turnstiles_schema() {
    let soda = Soda::start().await;
    // 2014's set spells two fields the old way; 2022's the current way.
    let mut fields_2014 = ARCHIVE_2022.map(String::from).to_vec();
    fields_2014[4] = "linename".into();
    fields_2014[8] = "desc".into();
    let (rows_2014, sum_2014) = archive_rows("2014-01-04", 120);
    let (rows_2022, sum_2022) = archive_rows("2022-01-01", 90);
    soda.put("i55r-43gk", SodaData { fields: fields_2014, time_field: "date".into(), rows: rows_2014 });
    soda.put(
        "k7j9-jnct",
        SodaData { fields: ARCHIVE_2022.map(String::from).to_vec(), time_field: "date".into(), rows: rows_2022 },
    );
    let f = Fleet::local("turnstile-archive");
    let workers = [f.worker(&[]), f.worker(&[])];
    for w in &workers {
        w.ready().await;
    }
    for week in ["2014-01-11", "2022-01-08"] {
        let out = f.backfill("mta-turnstile-archive", week, week, &["--mirror", &soda.base]);
        let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
        assert_eq!((s.done, s.parked.len()), (1, 0), "{week}: {s:?}");
    }
    let cat = lakefleet::catalog::Catalog::builtin();
    let weekly = lakefleet::convert::arrow_schema(cat.get("mta-turnstile").unwrap());
    for (week, n, sum) in [("2014-01-11", 120, sum_2014), ("2022-01-08", 90, sum_2022)] {
        let key = format!("mta-turnstile-archive/year={}/mta-turnstile-archive_{week}.parquet", &week[..4]);
        let (batches, _) = read_parquet(f.read_object(&key).await);
        assert_eq!(rows(&batches), n, "{week}");
        assert_eq!(sum_i64(&batches, "entries"), sum, "{week}: N.0 counters read as N");
        // The weekly files' schema: the same names, types and order.
        let got: Vec<(String, arrow_schema::DataType)> =
            batches[0].schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let want: Vec<(String, arrow_schema::DataType)> =
            weekly.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(got, want, "{week}");
        let b = &batches[0];
        let linename = b.column_by_name("linename").unwrap().as_string::<i32>().value(0).to_string();
        assert_eq!(linename, "NQR456W", "{week}");
        let ts = ny_wall_millis(b.column_by_name("observed_at").unwrap());
        let first_day = if week.starts_with("2014") { "2014-01-04" } else { "2022-01-01" };
        assert_eq!(lakefleet::util::timefmt::millis_to_string(ts[1].unwrap()), format!("{first_day} 04:00:00"));
    }
    // 2014's first page was refused, then asked with the old names under the new ones.
    let reqs = soda.requests();
    assert!(reqs.iter().any(|r| r.target.contains("i55r-43gk.csv") && r.status == 400), "a refusal");
    assert!(
        reqs.iter().any(|r| r.target.contains("i55r-43gk.csv")
            && r.target.contains("linename+AS+line_name")
            && r.status == 200),
        "{:?}",
        reqs.iter().map(|r| &r.target).collect::<Vec<_>>()
    );
    assert!(!reqs.iter().any(|r| r.target.contains("k7j9-jnct.csv") && r.status == 400), "2022 asked once");
    f.cleanup().await;
}
