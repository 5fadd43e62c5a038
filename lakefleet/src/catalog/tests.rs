//! The catalog: built-ins, user files, refusals.

use chrono::NaiveDate;

use super::*;

#[test]
fn builtins_validate_and_name_their_files() {
    let cat = Catalog::builtin();
    for d in cat.iter() {
        d.validate().unwrap_or_else(|e| panic!("{}: {e}", d.name));
    }
    let mta = cat.get("mta-turnstile").unwrap();
    let sat = NaiveDate::from_ymd_opt(2022, 1, 8).unwrap();
    assert_eq!(mta.source_url(sat), "http://web.mta.info/developers/data/nyct/turnstile/turnstile_220108.txt");
    assert_eq!(mta.object_key(sat), "mta-turnstile/year=2022/mta-turnstile_2022-01-08.parquet");
    assert_eq!(mta.fetch_url(sat, Some("http://127.0.0.1:9/m/")), "http://127.0.0.1:9/m/turnstile_220108.txt");
    assert!(mta.check_partition(sat).is_ok());
    assert!(mta.check_partition(sat.succ_opt().unwrap()).unwrap_err().contains("not a weekly"));
    assert!(mta.check_partition(NaiveDate::from_ymd_opt(2010, 1, 2).unwrap()).unwrap_err().contains("outside"));
    let y = cat.get("nyc-tlc-yellow").unwrap();
    let m = NaiveDate::from_ymd_opt(2019, 3, 1).unwrap();
    assert_eq!(y.format, SourceFormat::Parquet);
    assert_eq!(y.source_url(m), "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2019-03.parquet");
    assert_eq!(y.object_key(m), "nyc-tlc-yellow/year=2019/nyc-tlc-yellow_2019-03.parquet");
    let dtc = cat.get("dtc-nyc-tlc-yellow").unwrap();
    assert_eq!(dtc.format, SourceFormat::Csv);
    assert_eq!(
        dtc.source_url(m),
        "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/yellow/yellow_tripdata_2019-03.csv.gz"
    );
    for (name, first) in [
        ("nyc-tlc-yellow", "2009-01-01"),
        ("nyc-tlc-green", "2013-08-01"),
        ("nyc-tlc-fhv", "2015-01-01"),
        ("nyc-tlc-fhvhv", "2019-02-01"),
    ] {
        assert_eq!(cat.get(name).unwrap().first.to_string(), first, "{name}");
    }
}

#[test]
fn socrata_partitions_are_slices_of_the_id_that_holds_them() {
    let cat = Catalog::builtin();
    let r = cat.get("mta-subway-hourly-ridership").unwrap();
    let q = r.socrata_query("2024-12-01".parse().unwrap(), None).unwrap();
    assert_eq!(
        (q.id.as_str(), q.start.to_string(), q.end.to_string()),
        ("wujg-7c2s", "2024-12-01".into(), "2025-01-01".into())
    );
    assert_eq!(r.socrata_query("2025-01-01".parse().unwrap(), None).unwrap().id, "5wq4-mkjj");
    let url = r.source_url("2024-12-01".parse().unwrap());
    assert!(
        url.starts_with("https://data.ny.gov/resource/wujg-7c2s.csv?%24select=transit_timestamp%2Ctransit_mode"),
        "{url}"
    );
    assert!(url.contains("transit_timestamp+%3E%3D+%272024-12-01T00%3A00%3A00%27+AND+transit_timestamp+%3C+%272025-01-01T00%3A00%3A00%27"), "{url}");
    let m = r.fetch_url("2024-12-01".parse().unwrap(), Some("http://127.0.0.1:9/"));
    assert!(m.starts_with("http://127.0.0.1:9/resource/wujg-7c2s.csv?"), "{m}");
    assert!(q.page_url(50_000, 100_000).ends_with("&%24limit=50000&%24offset=100000"));
    assert!(q.count_url().starts_with("https://data.ny.gov/resource/wujg-7c2s.json?%24select=count%28*%29+AS+n&"));
    // Weekly slices are the seven days before the Saturday, as the MTA's weekly files.
    let mut w = r.clone();
    w.cadence = Cadence::Weekly;
    let q = w.socrata_query("2024-12-07".parse().unwrap(), None).unwrap();
    assert_eq!((q.start.to_string(), q.end.to_string()), ("2024-11-30".into(), "2024-12-07".into()));
}

#[test]
fn socrata_entries_are_checked() {
    let base = "cadence = \"daily\"\nformat = \"socrata\"\ntime_zone = \"America/New_York\"";
    let cols = r#"{ source = "t", type = "timestamp", format = "%Y-%m-%dT%H:%M:%S%.f" }"#;
    let soc = |ids: &str| {
        format!(
            "{base}\n[dataset.socrata]\nportal = \"https://data.example.org\"\ntime_column = \"t\"\nids = [ {ids} ]"
        )
    };
    let e = socrata_error(&soc(r#"{ id = "abcd-1234", first = "2020-01-01" }"#), cols);
    assert_eq!(e, "");
    let e = socrata_error(&soc(r#"{ id = "abcd1234", first = "2020-01-01" }"#), cols);
    assert!(e.contains("socrata.ids[0].id") && e.contains("not a Socrata id"), "{e}");
    let e = socrata_error(
        &soc(r#"{ id = "abcd-1234", first = "2020-01-01" }, { id = "efgh-5678", first = "2021-01-01" }"#),
        cols,
    );
    assert!(e.contains("socrata.ids[1]") && e.contains("starts before ids[0] ends"), "{e}");
    let e = socrata_error(base, cols);
    assert!(e.contains("needs [dataset.socrata]"), "{e}");
    let e =
        socrata_error(&soc(r#"{ id = "abcd-1234", first = "2020-01-01" }"#), r#"{ source = "a b", type = "string" }"#);
    assert!(e.contains("\"a b\" is not a Socrata field name"), "{e}");
}

fn socrata_error(extra: &str, columns: &str) -> String {
    load_error(&format!("[[dataset]]\nname = \"s\"\nfirst = \"2020-01-01\"\ncolumns = [ {columns} ]\n{extra}\n"))
}

/// `toml` written as a user catalog file, under a name unique to the test process.
fn catalog_file(name: &str, toml: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir =
        std::env::temp_dir().join(format!("lakefleet-cat-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path
}

/// The error of loading `toml` as a user catalog (empty when it loads).
fn load_error(toml: &str) -> String {
    Catalog::with_file(&catalog_file("c.toml", toml)).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn the_catalog_invents_no_end_and_names_the_mtas_current_counts() {
    let cat = Catalog::builtin();
    for ds in cat.iter() {
        if let Some(next) = &ds.successor {
            assert!(cat.get(next).is_some(), "{}: successor {next}", ds.name);
        }
    }
    // When the weekly turnstile files stopped is not known: no end date.
    let mta = cat.get("mta-turnstile").unwrap();
    assert_eq!((mta.last, mta.ended()), (None, None));
    assert_eq!(mta.successor.as_deref(), Some("mta-subway-hourly-ridership"));
    // A user's entry with a confirmed last file says that it ended.
    let mut ended = mta.clone();
    ended.last = Some("2023-05-06".parse().unwrap());
    assert!(ended.ended().unwrap().contains("dataset mta-subway-hourly-ridership continues its data"));
}

#[test]
fn a_name_defined_twice_is_refused_naming_both_entries() {
    let entry = |desc: &str| {
        format!(
            "[[dataset]]\nname = \"twice\"\ndescription = \"{desc}\"\ncadence = \"monthly\"\nurl_template = \"http://127.0.0.1:1/{{yyyy}}-{{mm}}.csv\"\nfirst = \"2020-01-01\"\ncolumns = [ {{ source = \"a\", type = \"string\" }} ]\n"
        )
    };
    let e = load_error(&format!("{}{}", entry("one"), entry("two")));
    assert!(e.contains("dataset \"twice\" is defined twice: [[dataset]] #1 and #2"), "{e}");
    assert_eq!(load_error(&entry("one")), "");
}

#[test]
fn eras_override_the_names_a_column_accepts() {
    let cat = Catalog::builtin();
    let y = cat.get("nyc-tlc-yellow").unwrap();
    let idx = |n: &str| y.columns.iter().position(|c| Dataset::output_name(c) == n).unwrap();
    let at = |s: &str| y.era(Some(s.parse().unwrap()));
    assert_eq!(y.accepted_names(idx("payment_type"), at("2009-05-01")), Vec::<&str>::new());
    assert_eq!(y.accepted_names(idx("payment_type_name"), at("2009-05-01")), ["Payment_Type"]);
    assert_eq!(y.accepted_names(idx("vendor_name"), at("2010-02-01")), ["vendor_id"]);
    assert_eq!(y.accepted_names(idx("payment_type"), at("2023-02-01")), ["payment_type"]);
    assert_eq!(
        y.accepted_names(idx("pickup_datetime"), at("2023-02-01")),
        ["tpep_pickup_datetime", "Trip_Pickup_DateTime", "pickup_datetime"]
    );
    assert!(y.era(None).is_none());
}

fn entry_error(extra: &str, columns: &str) -> String {
    load_error(&format!(
        "[[dataset]]\nname = \"mine\"\ncadence = \"monthly\"\nurl_template = \"http://h/{{yyyy}}-{{mm}}.parquet\"\nfirst = \"2020-01-01\"\ncolumns = [ {columns} ]\n{extra}\n"
    ))
}

#[test]
fn mappings_that_send_a_name_to_two_columns_are_refused() {
    let two = r#"{ name = "a", source = "A", type = "int64" }, { name = "b", source = "x", aliases = ["a"], type = "int64" }"#;
    let e = entry_error("format = \"parquet\"", two);
    assert!(e.contains("source name \"a\" goes to both a and b"), "{e}");
    let e = entry_error("", r#"{ name = "a", type = "int64" }"#);
    assert!(e.contains("columns[0].source") && e.contains("needs its source name"), "{e}");
    let e = entry_error("missing_columns = \"null\"", r#"{ source = "a", type = "int64" }"#);
    assert!(e.contains("only for format = \"parquet\""), "{e}");
    let era = "format = \"parquet\"\n[[dataset.eras]]\nfirst = \"2020-01-01\"\nsources = { nope = [\"x\"] }";
    let e = entry_error(era, r#"{ source = "a", type = "int64" }"#);
    assert!(e.contains("eras[0].sources") && e.contains("\"nope\" is not an output column"), "{e}");
    let ok = "format = \"parquet\"\nmissing_columns = \"null\"\nunknown_columns = \"ignore\"";
    assert_eq!(entry_error(ok, r#"{ name = "a", source = "A", aliases = ["alpha"], type = "int64" }"#), "");
}

fn template_error(cadence: &str, template: &str) -> String {
    load_error(&format!(
        "[[dataset]]\nname = \"mine\"\ncadence = \"{cadence}\"\nurl_template = \"{template}\"\nfirst = \"2020-01-04\"\nlast = \"2021-12-25\"\ncolumns = [ {{ source = \"a\", type = \"string\" }} ]\n"
    ))
}

#[test]
fn templates_whose_partitions_share_a_url_are_refused() {
    let e = template_error("monthly", "http://h/{yyyy}/data.csv");
    assert!(e.contains("partitions 2020-01-01 and 2020-02-01 would both fetch http://h/2020/data.csv"), "{e}");
    let e = template_error("weekly", "http://h/{yyyy}/{mm}/data.csv");
    assert!(e.contains("would both fetch") && e.contains("{dd}"), "{e}");
    let e = template_error("monthly", "http://h/get.csv?month={yyyy}-{month}");
    assert!(e.contains("unknown placeholder {month}"), "{e}");
    let e = template_error("monthly", "ftp://h/{yyyy}-{mm}.csv");
    assert!(e.contains("must be an http:// or https:// URL"), "{e}");
    assert_eq!(template_error("monthly", "http://h/get.csv?month={yyyy}-{mm}"), "");
    assert_eq!(template_error("weekly", "http://h/{yyyy}/{mm}/{dd}.csv"), "");
}

#[test]
fn snake_case_normalises_headers() {
    assert_eq!(snake_case("VendorID"), "vendor_id");
    assert_eq!(snake_case("PULocationID"), "pu_location_id");
    assert_eq!(snake_case("EXITS                                                               "), "exits");
    assert_eq!(snake_case("C/A"), "c_a");
    assert_eq!(snake_case("tpep_pickup_datetime"), "tpep_pickup_datetime");
}

#[test]
fn invalid_user_catalog_names_file_entry_and_field() {
    let path = catalog_file(
        "bad.toml",
        r#"
[[dataset]]
name = "mine"
cadence = "monthly"
url_template = "http://127.0.0.1/{yyyy}-{mm}.csv"
first = "2020-01-01"
columns = [ { source = "a", type = "date" } ]
"#,
    );
    let err = Catalog::with_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("dataset \"mine\""), "{err}");
    assert!(err.contains("columns[0].format"), "{err}");

    let err = load_error(
        "[[dataset]]\nname = \"x\"\ncadence = \"hourly\"\nurl_template = \"{yyyy}\"\nfirst = \"2020-01-01\"\ncolumns = []\n",
    );
    assert!(err.contains("dataset \"x\"") && err.contains("hourly"), "{err}");
}

#[test]
fn user_catalog_adds_and_overrides() {
    let path = catalog_file(
        "ok.toml",
        r#"
[[dataset]]
name = "mine"
cadence = "monthly"
url_template = "http://127.0.0.1/data_{yyyy}-{mm}.csv"
first = "2020-01-01"
last = "2020-12-01"
time_zone = "UTC"
columns = [ { source = "Id", type = "int64" }, { source = "When", type = "timestamp", format = "%Y-%m-%d %H:%M:%S" } ]
"#,
    );
    let cat = Catalog::with_file(&path).unwrap();
    let d = cat.get("mine").unwrap();
    assert_eq!(d.schema_summary(), vec!["id: int64", "when: timestamp"]);
    assert!(cat.get("mta-turnstile").is_some());
    assert!(cat.require("nope").unwrap_err().contains("mta-turnstile"));
}
