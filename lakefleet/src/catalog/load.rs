//! Loading the catalog: the built-in entries (`builtin.toml`, compiled in)
//! and a user's TOML file, whose entries override built-ins by name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Dataset;

/// Error loading a user catalog: names the file, the entry and the field.
#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    dataset: Vec<toml::Value>,
}

/// All known datasets, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    datasets: BTreeMap<String, Dataset>,
}

/// The built-in datasets, in the user catalog format.
const BUILTIN: &str = include_str!("builtin.toml");

/// Parses and validates the entries of a catalog file's text.
fn parse_entries(text: &str, path: &str) -> Result<Vec<Dataset>, CatalogError> {
    let err = |message: String| CatalogError { path: path.to_string(), message };
    let file: CatalogFile = toml::from_str(text).map_err(|e| err(e.to_string().trim().to_string()))?;
    let mut out: Vec<Dataset> = Vec::new();
    for (i, value) in file.dataset.into_iter().enumerate() {
        let entry_name = value
            .get("name")
            .and_then(|v| v.as_str())
            .map(|s| format!("dataset {s:?}"))
            .unwrap_or_else(|| format!("[[dataset]] #{}", i + 1));
        let ds: Dataset =
            value.try_into().map_err(|e: toml::de::Error| err(format!("{entry_name}: {}", e.message().trim())))?;
        ds.validate().map_err(|m| err(format!("{entry_name}: {m}")))?;
        // One file, one entry per name: the last one silently winning would
        // hide an edit made to the other.
        if let Some(first) = out.iter().position(|d| d.name == ds.name) {
            return Err(err(format!(
                "{entry_name} is defined twice: [[dataset]] #{} and #{}; keep one entry per name",
                first + 1,
                i + 1
            )));
        }
        out.push(ds);
    }
    Ok(out)
}

impl Catalog {
    /// The built-in datasets (`builtin.toml`, compiled in).
    pub fn builtin() -> Self {
        let entries = parse_entries(BUILTIN, "(built-in)").expect("the built-in catalog is valid (unit-tested)");
        Catalog { datasets: entries.into_iter().map(|d| (d.name.clone(), d)).collect() }
    }

    /// Built-ins plus the entries of `path` (which override by name).
    pub fn with_file(path: &Path) -> Result<Self, CatalogError> {
        let mut cat = Self::builtin();
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CatalogError { path: label.clone(), message: format!("cannot read: {e}") })?;
        for ds in parse_entries(&text, &label)? {
            cat.datasets.insert(ds.name.clone(), ds);
        }
        for ds in cat.datasets.values() {
            if let Some(next) = &ds.successor
                && !cat.datasets.contains_key(next)
            {
                return Err(CatalogError {
                    path: label,
                    message: format!("dataset {:?}: field `successor`: no dataset {next:?} in the catalog", ds.name),
                });
            }
        }
        Ok(cat)
    }

    /// Loads from `path` when given, else the built-ins.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        match path {
            Some(p) => Self::with_file(p),
            None => Ok(Self::builtin()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.datasets.get(name)
    }

    /// Like [`get`](Self::get) with an error that lists the known names.
    pub fn require(&self, name: &str) -> Result<&Dataset, String> {
        self.get(name).ok_or_else(|| format!("unknown dataset {name:?}; known datasets: {}", self.names().join(", ")))
    }

    pub fn names(&self) -> Vec<String> {
        self.datasets.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Dataset> {
        self.datasets.values()
    }
}
