//! Connection settings shared by both binaries, resolved and validated. The
//! flags and environment variables they come from are the binaries' business
//! ([`crate::cli`], behind the `cli` feature).

use crate::util::text::check_scheme;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_LAKE_URL: &str = "./lake";
pub const DEFAULT_PREFIX: &str = "lakefleet";

/// Where the fleet's services are. Build it with [`Connections::validate`]d
/// values only (the binaries do it once, at start).
#[derive(Debug, Clone)]
pub struct Connections {
    /// The RabbitMQ node(s), parsed from `AMQP_URL`.
    pub amqp_url: crate::rabbitmq::AmqpNodes,
    pub redis_url: String,
    /// Lake root: a local folder or file:///, s3://bucket/prefix, gs://, az://.
    pub lake_url: crate::lake::LakeUrl,
    /// Prefix of every queue and Redis key, so that fleets can share a broker.
    pub prefix: String,
    /// Base delay of the first retry; level N waits base*2^N.
    pub retry_base_ms: u64,
    /// Attempts before a transiently failing task is parked.
    pub max_attempts: u32,
}

impl Connections {
    /// Checks the settings; the error names the variable and its flag.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.prefix;
        if p.is_empty() || p.len() > 100 || !p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!(
                "LAKEFLEET_PREFIX (--prefix) {p:?}: use 1 to 100 letters, digits, '-', '_' or '.' (it starts every queue name and Redis key)"
            ));
        }
        if !(1..=3_600_000).contains(&self.retry_base_ms) {
            return Err(format!(
                "LAKEFLEET_RETRY_BASE_MS (--retry-base-ms) {}: must be between 1 and 3600000 (one hour)",
                self.retry_base_ms
            ));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(format!(
                "LAKEFLEET_MAX_ATTEMPTS (--max-attempts) {}: must be between 1 and 100",
                self.max_attempts
            ));
        }
        check_scheme("REDIS_URL (--redis-url)", &self.redis_url, &["redis", "rediss"])
    }

    pub fn topology(&self) -> crate::rabbitmq::topology::Topology {
        crate::rabbitmq::topology::Topology::new(&self.prefix, self.retry_base_ms, self.max_attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Connections {
        Connections {
            amqp_url: crate::rabbitmq::AmqpNodes::parse(DEFAULT_AMQP_URL).unwrap(),
            redis_url: DEFAULT_REDIS_URL.into(),
            lake_url: crate::lake::LakeUrl::parse(DEFAULT_LAKE_URL).unwrap(),
            prefix: DEFAULT_PREFIX.into(),
            retry_base_ms: 5000,
            max_attempts: 5,
        }
    }

    #[test]
    fn validate_names_the_setting() {
        assert_eq!(defaults().validate(), Ok(()));
        let e = Connections { prefix: "a b".into(), ..defaults() }.validate().unwrap_err();
        assert!(e.starts_with("LAKEFLEET_PREFIX (--prefix) \"a b\""), "{e}");
        let e = Connections { retry_base_ms: 0, ..defaults() }.validate().unwrap_err();
        assert!(e.starts_with("LAKEFLEET_RETRY_BASE_MS"), "{e}");
        let e = Connections { max_attempts: 0, ..defaults() }.validate().unwrap_err();
        assert!(e.starts_with("LAKEFLEET_MAX_ATTEMPTS"), "{e}");
        let e = Connections { redis_url: "not a url".into(), ..defaults() }.validate().unwrap_err();
        assert!(e.starts_with("REDIS_URL"), "{e}");
    }
}
