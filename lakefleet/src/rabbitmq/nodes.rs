//! `AMQP_URL`, parsed once: the nodes of a RabbitMQ cluster (one URL, or
//! several separated by commas, as Celery's broker failover takes them).

use std::fmt;

use crate::util::text::redact;

/// A parsed `AMQP_URL`: at least one `amqp://` or `amqps://` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpNodes(Vec<String>);

impl AmqpNodes {
    /// Parses `amqp_url`; the error names the variable, its flag and the
    /// (redacted) node that is wrong.
    pub fn parse(amqp_url: &str) -> Result<AmqpNodes, String> {
        let nodes: Vec<String> =
            amqp_url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect();
        if nodes.is_empty() {
            return Err(
                "AMQP_URL (--amqp-url) is empty: give a URL, or the comma-separated URLs of a cluster's nodes".into()
            );
        }
        for node in &nodes {
            crate::util::text::check_scheme("AMQP_URL (--amqp-url)", node, &["amqp", "amqps"])?;
        }
        Ok(AmqpNodes(nodes))
    }

    pub fn nodes(&self) -> &[String] {
        &self.0
    }
}

/// The nodes, comma-separated, passwords redacted.
impl fmt::Display for AmqpNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.iter().map(|n| redact(n)).collect::<Vec<_>>().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_url_is_parsed_once_into_its_nodes() {
        let e = AmqpNodes::parse("http://user:pw@host/").unwrap_err();
        assert!(e.contains("AMQP_URL") && e.contains("***") && !e.contains("pw"), "{e}");
        let two = "amqp://guest:pw@127.0.0.1:5672/%2f, amqp://guest:pw@127.0.0.1:5673/%2f";
        let nodes = AmqpNodes::parse(two).unwrap();
        assert_eq!(nodes.nodes().len(), 2);
        assert_eq!(nodes.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f,amqp://guest:***@127.0.0.1:5673/%2f");
        let e = AmqpNodes::parse(&format!("{two},http://h/")).unwrap_err();
        assert!(e.starts_with("AMQP_URL (--amqp-url) http://h/: scheme"), "{e}");
        let e = AmqpNodes::parse(" , ").unwrap_err();
        assert!(e.contains("AMQP_URL (--amqp-url) is empty"), "{e}");
    }
}
