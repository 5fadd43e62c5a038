//! The one place that decides what a failure is: transient (retry with
//! backoff), or permanent (park now, with a short reason code).

use std::time::Duration;

use crate::convert::ConvertError;
use crate::lake::LakeError;
use crate::source::FetchError;
use crate::util::text;

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
    Poison,
    EmptySource,
    TooLarge,
    SchemaDrift,
    CorruptSource,
    /// The dataset's Delta table asks of its writers what lakefleet does not
    /// do (a writer feature, `delta.appendOnly` on a refresh, a CHECK
    /// constraint): nothing was written.
    TableUnsupported,
    /// The lake answered 401 or 403 to the fleet's credentials.
    LakeRefused,
}

impl Reason {
    pub const ALL: [Reason; 16] = [
        Reason::NotFound,
        Reason::NotPublishedYet,
        Reason::HttpError,
        Reason::SchemaMismatch,
        Reason::BadRow,
        Reason::BadMessage,
        Reason::Conflict,
        Reason::AttemptsExhausted,
        Reason::DeliveryLimit,
        Reason::Poison,
        Reason::EmptySource,
        Reason::TooLarge,
        Reason::SchemaDrift,
        Reason::CorruptSource,
        Reason::TableUnsupported,
        Reason::LakeRefused,
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
            Reason::Poison => "poison",
            Reason::EmptySource => "empty_source",
            Reason::TooLarge => "too_large",
            Reason::SchemaDrift => "schema_drift",
            Reason::CorruptSource => "corrupt_source",
            Reason::TableUnsupported => "table_unsupported",
            Reason::LakeRefused => "lake_refused",
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
    /// The newest partition is not published yet: ask again on the
    /// dataset's publication calendar, park when its patience is over.
    NotYet { message: String },
}

impl Failure {
    /// A failure that may heal; the message is bounded ([`text::MAX_MESSAGE`]).
    pub fn transient(message: impl AsRef<str>) -> Self {
        Failure::Transient { message: text::bounded(message.as_ref(), text::MAX_MESSAGE), retry_after: None }
    }

    /// A failure that will not heal; the message is bounded ([`text::MAX_MESSAGE`]).
    pub fn permanent(reason: Reason, message: impl AsRef<str>) -> Self {
        Failure::Permanent { reason, message: text::bounded(message.as_ref(), text::MAX_MESSAGE) }
    }

    /// An HTTP failure; `recent` says the partition is the newest one the
    /// source should have, so a 404 likely means "not published yet".
    pub fn from_fetch(e: FetchError, recent: bool) -> Self {
        match &e {
            // CloudFront (the TLC) answers 403 for a file that is not there yet.
            FetchError::Status { status: 403 | 404 | 410, .. } if recent => {
                Failure::NotYet { message: text::bounded(&format!("{e}: not published yet"), text::MAX_MESSAGE) }
            }
            FetchError::Status { status: 404 | 410, .. } => {
                Failure::permanent(Reason::NotFound, format!("{e}: the source has no such file"))
            }
            FetchError::Status { status, retry_after, .. } if *status >= 500 || *status == 429 || *status == 408 => {
                Failure::Transient {
                    message: text::bounded(&e.to_string(), text::MAX_MESSAGE),
                    retry_after: *retry_after,
                }
            }
            FetchError::Status { .. } => Failure::permanent(Reason::HttpError, e.to_string()),
            FetchError::Refused { .. } => Failure::permanent(Reason::BadMessage, e.to_string()),
            FetchError::Network { .. } => Failure::transient(e.to_string()),
        }
    }
}

impl From<ConvertError> for Failure {
    fn from(e: ConvertError) -> Self {
        match e {
            ConvertError::Source { .. } | ConvertError::Output { .. } => Failure::transient(e.to_string()),
            ConvertError::Header { .. } => Failure::permanent(Reason::SchemaMismatch, e.to_string()),
            ConvertError::Row { .. } | ConvertError::Value { .. } | ConvertError::OutsideSlice { .. } => {
                Failure::permanent(Reason::BadRow, e.to_string())
            }
            ConvertError::SchemaDrift { .. } => Failure::permanent(Reason::SchemaDrift, e.to_string()),
            ConvertError::Corrupt { .. } | ConvertError::NotParquet { .. } => {
                Failure::permanent(Reason::CorruptSource, e.to_string())
            }
            ConvertError::Empty { .. } => Failure::permanent(Reason::EmptySource, e.to_string()),
            ConvertError::TooLarge { .. } => Failure::permanent(Reason::TooLarge, e.to_string()),
        }
    }
}

impl From<LakeError> for Failure {
    fn from(e: LakeError) -> Self {
        if e.is_transient() {
            Failure::transient(format!("uploading {e}"))
        } else {
            Failure::permanent(Reason::Conflict, format!("uploading {e}"))
        }
    }
}

impl From<crate::table::TableError> for Failure {
    fn from(e: crate::table::TableError) -> Self {
        use crate::table::TableError;
        match &e {
            TableError::Schema { .. } => Failure::permanent(Reason::SchemaMismatch, format!("committing: {e}")),
            TableError::Unsupported { .. } => Failure::permanent(Reason::TableUnsupported, format!("committing: {e}")),
            TableError::Refused { .. } => Failure::permanent(Reason::LakeRefused, format!("committing: {e}")),
            TableError::Lake(LakeError::Store {
                source: object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. },
                ..
            }) => Failure::permanent(
                Reason::LakeRefused,
                format!("committing: {e}: the lake refused the fleet's credentials"),
            ),
            TableError::Lake(l) if !l.is_transient() => {
                Failure::permanent(Reason::Conflict, format!("committing: {e}"))
            }
            // Contention, a store error, or a log we cannot read yet: retried.
            _ => Failure::transient(format!("committing: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_are_classified() {
        let st = |status, recent| {
            Failure::from_fetch(
                FetchError::Status { url: "http://x/f.csv".into(), status, retry_after: None, detail: None },
                recent,
            )
        };
        assert!(matches!(st(500, false), Failure::Transient { .. }));
        assert!(matches!(st(429, false), Failure::Transient { .. }));
        assert!(matches!(st(404, false), Failure::Permanent { reason: Reason::NotFound, .. }));
        assert!(matches!(st(404, true), Failure::NotYet { .. }));
        assert!(matches!(st(403, true), Failure::NotYet { .. }));
        assert!(matches!(st(403, false), Failure::Permanent { reason: Reason::HttpError, .. }));
        let refused = FetchError::Refused { url: "file:///etc/passwd".into(), message: "not http".into() };
        assert!(matches!(Failure::from_fetch(refused, false), Failure::Permanent { reason: Reason::BadMessage, .. }));
        let Failure::Transient { message, .. } = Failure::transient("x".repeat(1 << 20)) else { unreachable!() };
        assert!(message.len() < 2 * crate::util::text::MAX_MESSAGE, "{}", message.len());
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
    }
}
