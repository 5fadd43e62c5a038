//! The one place that decides what a failure is: transient (retry with
//! backoff), or permanent (park now, with a short reason code).

use std::time::Duration;

use crate::convert::ConvertError;
use crate::lake::LakeError;
use crate::source::FetchError;

/// Why a task was parked. The code is a metric label and a message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    NotPublishedYet,
    HttpError,
    SchemaMismatch,
    BadRow,
    BadMessage,
    Conflict,
    AttemptsExhausted,
    DeliveryLimit,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::NotFound,
        Reason::NotPublishedYet,
        Reason::HttpError,
        Reason::SchemaMismatch,
        Reason::BadRow,
        Reason::BadMessage,
        Reason::Conflict,
        Reason::AttemptsExhausted,
        Reason::DeliveryLimit,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::NotFound => "not_found",
            Reason::NotPublishedYet => "not_published_yet",
            Reason::HttpError => "http_error",
            Reason::SchemaMismatch => "schema_mismatch",
            Reason::BadRow => "bad_row",
            Reason::BadMessage => "bad_message",
            Reason::Conflict => "conflict",
            Reason::AttemptsExhausted => "attempts_exhausted",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }

    pub fn from_code(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == s)
    }
}

/// A task failure and what to do about it.
#[derive(Debug, Clone)]
pub enum Failure {
    /// May heal: retry after a delay (at least `retry_after` if given).
    Transient { message: String, retry_after: Option<Duration> },
    /// Will not heal: park now.
    Permanent { reason: Reason, message: String },
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Failure::Transient { message: message.into(), retry_after: None }
    }

    /// An HTTP failure; `recent` says the partition is the newest one the
    /// source should have, so a 404 likely means "not published yet".
    pub fn from_fetch(e: FetchError, recent: bool) -> Self {
        match &e {
            FetchError::Status { status: 404 | 410, .. } if recent => Failure::Permanent {
                reason: Reason::NotPublishedYet,
                message: format!("{e}: not published yet (the newest partitions may appear later; replay it then)"),
            },
            FetchError::Status { status: 404 | 410, .. } => {
                Failure::Permanent { reason: Reason::NotFound, message: format!("{e}: the source has no such file") }
            }
            FetchError::Status { status, retry_after, .. } if *status >= 500 || *status == 429 || *status == 408 => {
                Failure::Transient { message: e.to_string(), retry_after: *retry_after }
            }
            FetchError::Status { .. } => Failure::Permanent { reason: Reason::HttpError, message: e.to_string() },
            FetchError::Network { .. } => Failure::transient(e.to_string()),
        }
    }
}

impl From<ConvertError> for Failure {
    fn from(e: ConvertError) -> Self {
        match e {
            ConvertError::Source { .. } | ConvertError::Output { .. } => Failure::transient(e.to_string()),
            ConvertError::Header { .. } => {
                Failure::Permanent { reason: Reason::SchemaMismatch, message: e.to_string() }
            }
            ConvertError::Row { .. } => Failure::Permanent { reason: Reason::BadRow, message: e.to_string() },
        }
    }
}

impl From<LakeError> for Failure {
    fn from(e: LakeError) -> Self {
        if e.is_transient() {
            Failure::transient(format!("uploading {e}"))
        } else {
            Failure::Permanent { reason: Reason::Conflict, message: format!("uploading {e}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_are_classified() {
        let st = |status, recent| {
            Failure::from_fetch(FetchError::Status { url: "http://x/f.csv".into(), status, retry_after: None }, recent)
        };
        assert!(matches!(st(500, false), Failure::Transient { .. }));
        assert!(matches!(st(429, false), Failure::Transient { .. }));
        assert!(matches!(st(404, false), Failure::Permanent { reason: Reason::NotFound, .. }));
        assert!(matches!(st(404, true), Failure::Permanent { reason: Reason::NotPublishedYet, .. }));
        assert!(matches!(st(403, false), Failure::Permanent { reason: Reason::HttpError, .. }));
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
    }
}
