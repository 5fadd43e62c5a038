//! A Parquet source's schema mapped onto the dataset's columns: which source
//! column feeds which output column, and which types convert.

use super::*;

/// What a source column is, for the conversions below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The `null` type: an all-empty column (pyarrow writes it for empty months).
    Null,
    Int,
    UInt64,
    Float,
    Str,
    Bool,
    Timestamp(TimeUnit),
    Date32,
    Date64,
}

pub(super) fn kind(t: &DataType) -> Option<Kind> {
    Some(match t {
        DataType::Null => Kind::Null,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Int,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Kind::Int,
        DataType::UInt64 => Kind::UInt64,
        DataType::Float32 | DataType::Float64 => Kind::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Str,
        DataType::Dictionary(_, v) if kind(v) == Some(Kind::Str) => Kind::Str,
        DataType::Boolean => Kind::Bool,
        DataType::Timestamp(u, _) => Kind::Timestamp(*u),
        DataType::Date32 => Kind::Date32,
        DataType::Date64 => Kind::Date64,
        _ => return None,
    })
}

/// Whether a source kind can become an output type (safely or with a
/// per-value check).
pub(super) fn converts(k: Kind, ty: ColumnType) -> bool {
    use ColumnType as T;
    use Kind as K;
    match ty {
        T::Int64 | T::Float64 => matches!(k, K::Null | K::Int | K::UInt64 | K::Float | K::Str),
        T::String => matches!(k, K::Null | K::Int | K::UInt64 | K::Float | K::Str | K::Bool),
        T::Timestamp | T::Date => matches!(k, K::Null | K::Str | K::Timestamp(_) | K::Date32 | K::Date64),
    }
}

/// One output column and where it comes from.
pub(super) struct Target {
    pub(super) name: String,
    pub(super) ty: ColumnType,
    pub(super) nullable: bool,
    pub(super) format: Option<DateTimeFormat>,
    /// Position in the projected batch and the source column's name; none:
    /// the source lacks it (nulls).
    pub(super) from: Option<(usize, String)>,
}

/// The source schema matched against the dataset: projection and targets.
pub(super) struct Mapping {
    pub(super) roots: Vec<usize>,
    pub(super) targets: Vec<Target>,
}

pub(super) fn header_err(ds: &Dataset, file: &str, message: String) -> ConvertError {
    ConvertError::Header { file: file.to_string(), dataset: ds.name.clone(), message }
}

/// Short type names for messages: `int32`, `double`, `string`, `timestamp[us]`, `null`.
pub(super) fn type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "null".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Timestamp(u, _) => {
            format!(
                "timestamp[{}]",
                match u {
                    TimeUnit::Second => "s",
                    TimeUnit::Millisecond => "ms",
                    TimeUnit::Microsecond => "us",
                    TimeUnit::Nanosecond => "ns",
                }
            )
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

pub(super) fn map_schema(
    ds: &Dataset,
    file: &str,
    schema: &SchemaRef,
    date: Option<NaiveDate>,
) -> Result<Mapping, ConvertError> {
    let era = ds.era(date);
    let accepted: Vec<Vec<&str>> = (0..ds.columns.len()).map(|i| ds.accepted_names(i, era)).collect();
    let mut source_of: Vec<Option<usize>> = vec![None; ds.columns.len()];
    let mut unknown = Vec::new();
    for (s, field) in schema.fields().iter().enumerate() {
        let name = field.name().trim();
        if ds.ignore_columns.iter().any(|g| g.eq_ignore_ascii_case(name)) {
            continue;
        }
        let Some(i) = accepted.iter().position(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name))) else {
            unknown.push(format!("{} ({})", crate::util::text::bounded(name, 100), type_name(field.data_type())));
            continue;
        };
        if let Some(prev) = source_of[i] {
            return Err(header_err(
                ds,
                file,
                format!(
                    "source columns {} and {name} both map to output column {}",
                    schema.field(prev).name(),
                    Dataset::output_name(&ds.columns[i])
                ),
            ));
        }
        let col = &ds.columns[i];
        // A zone-aware timestamp holds instants: a timestamp column takes
        // them as they are (an instant table) or as wall-clock times in the
        // dataset's time zone (a wall-clock table, which must name one); a
        // date column would need a zone to pick the day in, and is refused.
        if let DataType::Timestamp(_, Some(tz)) = field.data_type() {
            let refused = match col.ty {
                ColumnType::Timestamp if ds.time_zone.is_some() => None,
                ColumnType::Timestamp => Some(
                    "the dataset keeps wall-clock times and names no time zone to read this column's instants in: set time_zone (e.g. \"America/New_York\")".to_string(),
                ),
                other => Some(format!(
                    "it holds instants, which {other} column {} cannot take without choosing a zone: make the column a timestamp",
                    Dataset::output_name(col)
                )),
            };
            if let Some(why) = refused {
                return Err(header_err(
                    ds,
                    file,
                    format!(
                        "source column {name} is a timestamp in time zone {}: {why}",
                        crate::util::text::bounded(tz, 60)
                    ),
                ));
            }
        }
        match kind(field.data_type()) {
            Some(k) if converts(k, col.ty) => source_of[i] = Some(s),
            _ => {
                return Err(header_err(
                    ds,
                    file,
                    format!(
                        "source column {name} is {}, which cannot become {} column {}",
                        type_name(field.data_type()),
                        col.ty,
                        Dataset::output_name(col)
                    ),
                ));
            }
        }
    }
    if !unknown.is_empty() && ds.unknown_columns == UnknownColumns::Fail {
        let shown = unknown.len().min(20);
        return Err(ConvertError::SchemaDrift {
            file: file.to_string(),
            dataset: ds.name.clone(),
            message: format!(
                "unknown column(s) {}{}: not in the dataset's schema{}; add them to the catalog (a column, or an alias of one) or set unknown_columns = \"ignore\", then replay",
                unknown[..shown].join(", "),
                if unknown.len() > shown { format!(" and {} more", unknown.len() - shown) } else { String::new() },
                era.map(|e| format!(" (era from {})", e.first)).unwrap_or_default(),
            ),
        });
    }
    let missing: Vec<String> =
        ds.columns.iter().zip(&source_of).filter(|(_, s)| s.is_none()).map(|(c, _)| Dataset::output_name(c)).collect();
    if !missing.is_empty() && ds.missing_columns == MissingColumns::Fail {
        let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(header_err(
            ds,
            file,
            format!(
                "missing column(s) {}; found [{}]",
                missing.join(", "),
                crate::util::text::bounded(&found.join(","), 600)
            ),
        ));
    }
    let mut roots: Vec<usize> = source_of.iter().flatten().copied().collect();
    roots.sort_unstable();
    let targets = ds
        .columns
        .iter()
        .zip(&source_of)
        .map(|(c, s)| Target {
            name: Dataset::output_name(c),
            ty: c.ty,
            nullable: c.nullable,
            format: c.format.as_deref().map(|f| DateTimeFormat::compile(f).expect("validated catalog")),
            from: s.map(|s| (roots.binary_search(&s).expect("projected"), schema.field(s).name().clone())),
        })
        .collect();
    Ok(Mapping { roots, targets })
}
