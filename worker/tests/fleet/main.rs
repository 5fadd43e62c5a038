//! The worker's integration tests: the real `worker` (and `producer`) binaries
//! against the real RabbitMQ, Redis, an S3-compatible server (moto) and HTTP
//! sources served by the tests. Every test has its own queue prefix, Redis
//! key prefix and lake, so they run in parallel.

mod attacks;
mod convert;
mod e2e;
mod faults;
mod hostile;
mod interop;
mod races;
mod socrata;
mod tables;
mod tlc;
