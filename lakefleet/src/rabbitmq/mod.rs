//! RabbitMQ: [`topology`] (the queues of both lanes, connecting to a node of
//! a cluster, confirmed publishing) and [`parking`] (the headers of a parked
//! task).

pub mod parking;
pub mod topology;
