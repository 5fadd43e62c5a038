//! Failures: retries with backoff, parking, dead-letter operations.
