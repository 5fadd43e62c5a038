//! Connection settings shared by both binaries: environment variables with
//! working local defaults, overridable by flags.

use clap::Args;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_LAKE_URL: &str = "./lake";
pub const DEFAULT_PREFIX: &str = "lakefleet";

/// Where the fleet's services are.
#[derive(Debug, Clone, Args)]
pub struct Connections {
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    pub amqp_url: String,
    /// Redis URL (dedupe markers, leases, backfill progress).
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    /// Lake root: a local folder or file:///, s3://bucket/prefix, gs://, az://.
    #[arg(long, env = "LAKE_URL", default_value = DEFAULT_LAKE_URL)]
    pub lake_url: String,
    /// Prefix of every queue and Redis key, so that fleets can share a broker.
    #[arg(long, env = "LAKEFLEET_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// Base delay of the first retry, in milliseconds; level N waits base*2^N.
    /// Part of the retry queue names, so fleets must agree on it.
    #[arg(long, env = "LAKEFLEET_RETRY_BASE_MS", default_value_t = 5000)]
    pub retry_base_ms: u64,
    /// Attempts before a transiently failing task is parked.
    #[arg(long, env = "LAKEFLEET_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
}

impl Connections {
    pub fn topology(&self) -> crate::topology::Topology {
        crate::topology::Topology::new(&self.prefix, self.retry_base_ms, self.max_attempts)
    }
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("amqp://guest:secret@host:5672/%2f"), "amqp://guest:***@host:5672/%2f");
        assert_eq!(super::redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
