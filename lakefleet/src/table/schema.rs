//! The table's schema from the catalog, what the fleet refuses to write to, and
//! when a schema really changed (compared parsed, never as text).

use super::*;

/// Writer features lakefleet honours. Any other feature a table requires of
/// its writers refuses the table before anything is written.
///
/// - `appendOnly`: backfills append; a refresh (which removes files) is refused.
/// - `invariants`, `checkConstraints`: allowed only while the table has no
///   invariant nor constraint (lakefleet does not evaluate them: a table
///   with one is refused).
/// - `changeDataFeed`: lakefleet adds and removes whole files, whose
///   changes readers derive from the Adds and Removes; no `cdc` file is due.
///   A refresh that would rewrite another tool's file (which would need
///   one) is refused while `delta.enableChangeDataFeed` is set.
/// - `deletionVectors`: a refresh removes a file with its deletion vector
///   (the kernel's Removes carry it); lakefleet writes none itself.
/// - `timestampNtz`, `domainMetadata`, `vacuumProtocolCheck`,
///   `columnMapping` (mode `none` only), `v2Checkpoint`: the kernel writes
///   the log these ask for.
/// - `variantType` (python deltalake turns it on with any property): the
///   table may hold variant columns; the catalog has none, and a table
///   column the catalog does not type alike is refused by the schema check.
pub const WRITER_FEATURES: [&str; 12] = [
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "deletionVectors",
    "timestampNtz",
    "domainMetadata",
    "vacuumProtocolCheck",
    "v2Checkpoint",
    "columnMapping",
    "variantType",
    "variantType-preview",
];

/// Delta's type of an output column: timestamps are `timestamp` (instants)
/// unless the dataset keeps wall-clock times (`timestamp_ntz`).
pub(super) fn delta_type(t: ColumnType, instants: bool) -> DataType {
    match t {
        ColumnType::String => DataType::STRING,
        ColumnType::Int64 => DataType::LONG,
        ColumnType::Float64 => DataType::DOUBLE,
        ColumnType::Date => DataType::DATE,
        ColumnType::Timestamp if instants => DataType::TIMESTAMP,
        ColumnType::Timestamp => DataType::TIMESTAMP_NTZ,
    }
}

/// The table's schema: the dataset's output columns, the lineage column
/// ([`crate::convert::LINEAGE_COLUMN`]), then `year`.
pub fn schema(ds: &Dataset) -> StructType {
    let instants = ds.timestamps == crate::catalog::Timestamps::Instant;
    let fields = ds
        .columns
        .iter()
        .map(|c| (Dataset::output_name(c), c.ty))
        .chain(ds.derived.iter().map(|d| (d.name.clone(), d.ty)))
        .map(|(name, ty)| StructField::nullable(name, delta_type(ty, instants)))
        .chain([
            StructField::nullable(crate::convert::LINEAGE_COLUMN, DataType::DATE),
            StructField::nullable(PARTITION_COLUMN, DataType::INTEGER),
        ]);
    StructType::new_unchecked(fields)
}

/// The table's schema as Delta's JSON schema string.
pub fn schema_string(ds: &Dataset) -> String {
    serde_json::to_string(&schema(ds)).unwrap_or_default()
}

/// Whether lakefleet may write to the table `snap` is, and what it may do:
/// `removes` when the commit removes files (a refresh). Names the feature,
/// property or constraint it refuses.
pub fn check_writable(snap: &delta_kernel::Snapshot, removes: bool) -> Result<(), String> {
    let config = snap.table_configuration();
    let protocol = config.protocol();
    if protocol.min_writer_version() > 7 {
        return Err(format!(
            "requires writer version {}, newer than lakefleet writes (7)",
            protocol.min_writer_version()
        ));
    }
    for f in protocol.writer_features().unwrap_or_default() {
        let name = f.to_string();
        if !WRITER_FEATURES.contains(&name.as_str()) {
            return Err(format!("requires writer feature {name}, which lakefleet does not write"));
        }
    }
    let properties = config.metadata().configuration();
    if let Some(mode) = properties.get("delta.columnMapping.mode")
        && mode != "none"
    {
        return Err(format!("uses delta.columnMapping.mode = {mode}, which lakefleet does not write"));
    }
    if let Some(key) = properties.keys().find(|k| k.starts_with("delta.constraints.")) {
        let name = key.trim_start_matches("delta.constraints.");
        return Err(format!(
            "has the CHECK constraint {name} ({}), which lakefleet does not evaluate: drop it or write the dataset to another table",
            properties[key]
        ));
    }
    if let Some(field) = snap.schema().fields().find(|f| f.metadata().contains_key("delta.invariants")) {
        return Err(format!("column {} has an invariant, which lakefleet does not evaluate", field.name()));
    }
    if removes && snap.table_properties().append_only == Some(true) {
        return Err(
            "sets delta.appendOnly = true: a refresh removes the partition's old files, which an append-only table forbids (backfills still append; unset the property to refresh)"
                .to_string(),
        );
    }
    let _ = TableFeature::AppendOnly;
    Ok(())
}

/// What a commit of `all` would change in the table's schema: the columns
/// to add. A column the table has that the catalog lost, or whose type
/// changed, is refused naming it.
pub(super) fn schema_changes(table: &StructType, ours: &StructType) -> Result<Vec<StructField>, String> {
    for theirs in table.fields() {
        match ours.field(theirs.name()) {
            None => {
                return Err(format!(
                    "the catalog no longer has column {}, which the table's files hold; keep the column (nullable), or write the dataset under a new name (or a new table) and backfill it",
                    theirs.name()
                ));
            }
            Some(f) if f.data_type() == &DataType::TIMESTAMP && theirs.data_type() == &DataType::TIMESTAMP_NTZ => {
                return Err(format!(
                    "column {} holds wall-clock times (timestamp_ntz: written before lakefleet stored instants) and the catalog now stores instants (timestamp, read in its time_zone); nothing is mixed: set timestamps = \"wall_clock\" for the dataset to keep appending to this table, or move the dataset to a new table (a new dataset name, or a new lake folder) and backfill it there as instants",
                    theirs.name()
                ));
            }
            Some(f) if f.data_type() != theirs.data_type() => {
                return Err(format!(
                    "column {} is {} in the catalog but {} in the table's files, which cannot be read as {}; keep its type, or write the dataset under a new name and backfill it",
                    theirs.name(),
                    f.data_type(),
                    theirs.data_type(),
                    f.data_type()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(ours.fields().filter(|f| table.field(f.name()).is_none()).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_the_output_columns_then_the_year() {
        let cat = crate::catalog::Catalog::builtin();
        let ds = cat.get("mta-turnstile").unwrap();
        let s = schema(ds);
        let names: Vec<&String> = s.fields().map(|f| f.name()).collect();
        assert_eq!(names.first().map(|s| s.as_str()), Some("ca"));
        assert_eq!(names.last().map(|s| s.as_str()), Some("year"));
        assert!(s.fields().any(|f| f.data_type() == &DataType::TIMESTAMP), "instants by default: {s:?}");
        assert!(!s.fields().any(|f| f.data_type() == &DataType::TIMESTAMP_NTZ), "{s:?}");
    }

    #[test]
    fn an_added_column_is_a_change_and_a_retyped_one_is_refused() {
        let t = StructType::new_unchecked([
            StructField::nullable("a", DataType::STRING),
            StructField::nullable("year", DataType::INTEGER),
        ]);
        let ours = StructType::new_unchecked([
            StructField::nullable("a", DataType::STRING),
            StructField::nullable("b", DataType::LONG),
            StructField::nullable("year", DataType::INTEGER),
        ]);
        let added = schema_changes(&t, &ours).unwrap();
        assert_eq!(added.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["b"]);
        let retyped = StructType::new_unchecked([
            StructField::nullable("a", DataType::LONG),
            StructField::nullable("year", DataType::INTEGER),
        ]);
        assert!(schema_changes(&t, &retyped).unwrap_err().contains("column a is long"));
        assert!(schema_changes(&ours, &t).unwrap_err().contains("no longer has column b"));
    }

    #[test]
    fn a_table_of_wall_clock_times_gets_one_sentence_when_the_catalog_stores_instants() {
        let t = StructType::new_unchecked([StructField::nullable("at", DataType::TIMESTAMP_NTZ)]);
        let ours = StructType::new_unchecked([StructField::nullable("at", DataType::TIMESTAMP)]);
        let e = schema_changes(&t, &ours).unwrap_err();
        assert!(e.contains("column at holds wall-clock times") && e.contains("timestamps = \"wall_clock\""), "{e}");
        let cat = crate::catalog::Catalog::builtin();
        let mut ds = cat.get("mta-turnstile").unwrap().clone();
        ds.timestamps = crate::catalog::Timestamps::WallClock;
        assert!(schema(&ds).fields().any(|f| f.data_type() == &DataType::TIMESTAMP_NTZ));
    }
}
