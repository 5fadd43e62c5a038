//! RabbitMQ: [`AmqpNodes`] (`AMQP_URL` parsed once), [`topology`] (the queues of both lanes, connecting to a node of
//! a cluster, confirmed publishing) and [`parking`] (the headers of a parked
//! task).

mod nodes;
pub mod parking;
pub mod topology;

pub use nodes::AmqpNodes;
