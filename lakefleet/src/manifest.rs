//! A backfill's manifest, written into the lake by `producer backfill`
//! (`_lakefleet/backfills/{id}.json`, which Hive-style readers skip): the
//! plan as it was published. Redis keeps nothing on disk; when it loses a
//! backfill, `producer status` rebuilds its view from this manifest, the
//! objects in the lake and the parking queue.

use serde::{Deserialize, Serialize};

use crate::lake::{Lake, LakeError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillManifest {
    pub id: String,
    pub dataset: String,
    /// The requested range, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub mirror: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// Every planned partition, `YYYY-MM-DD`.
    pub partitions: Vec<String>,
}

impl BackfillManifest {
    pub fn key(id: &str) -> String {
        format!("_lakefleet/backfills/{id}.json")
    }

    pub async fn write(&self, lake: &Lake) -> Result<(), LakeError> {
        let body = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        lake.put_small(&Self::key(&self.id), body).await
    }

    /// The manifest of backfill `id`, if the lake has it.
    pub async fn read(lake: &Lake, id: &str) -> anyhow::Result<Option<BackfillManifest>> {
        let key = Self::key(id);
        let Some(bytes) = lake.get_opt(&key).await? else { return Ok(None) };
        let m = serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", lake.display(&key)))?;
        Ok(Some(m))
    }
}
