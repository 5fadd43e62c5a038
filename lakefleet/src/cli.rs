//! The connection flags both binaries take (clap, behind the `cli` feature):
//! raw values from flags and the environment, resolved once into
//! [`Connections`] by [`ConnectionFlags::resolve`].

use clap::Args;

use crate::config::{Connections, DEFAULT_AMQP_URL, DEFAULT_LAKE_URL, DEFAULT_PREFIX, DEFAULT_REDIS_URL};

/// Where the fleet's services are.
#[derive(Debug, Clone, Args)]
pub struct ConnectionFlags {
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

impl ConnectionFlags {
    /// The validated settings; the error names the variable and its flag.
    pub fn resolve(&self) -> Result<Connections, String> {
        let c = Connections {
            amqp_url: crate::rabbitmq::AmqpNodes::parse(&self.amqp_url)?,
            redis_url: self.redis_url.clone(),
            lake_url: crate::lake::LakeUrl::parse(&self.lake_url)?,
            prefix: self.prefix.clone(),
            retry_base_ms: self.retry_base_ms,
            max_attempts: self.max_attempts,
        };
        c.validate()?;
        Ok(c)
    }
}

/// A whole number of seconds from a flag, at least `min`; the error names
/// the variable and the flag (`LAKEFLEET_LEASE_TTL (--lease-ttl) 0: ...`).
pub fn seconds_at_least(name: &str, value: u64, min: u64) -> Result<std::time::Duration, String> {
    if value < min {
        return Err(format!("{name} {value}: must be at least {min} second(s)"));
    }
    Ok(std::time::Duration::from_secs(value))
}
