//! The fleet's queues as a test sees them: lengths, draining, publishing a
//! task as a producer would, the parked messages.

use super::*;

impl Fleet {
    /// Publishes `task` to the work queue as a producer would (confirmed).
    pub async fn publish_task(&self, task: &Task) {
        let conn =
            lakefleet::rabbitmq::topology::connect(&lakefleet::rabbitmq::AmqpNodes::parse(AMQP).unwrap(), "test")
                .await
                .unwrap();
        let ch = lakefleet::rabbitmq::topology::confirm_channel(&conn).await.unwrap();
        let topo = self.topology();
        topo.declare(&ch).await.unwrap();
        let headers = lakefleet::rabbitmq::topology::headers(&lakefleet::rabbitmq::parking::task_headers(task));
        lakefleet::rabbitmq::topology::publish_confirmed(&ch, topo.work_queue(task.lane), &task.encode(), headers)
            .await
            .unwrap();
        let _ = conn.close(200, "".into()).await;
    }

    /// The parked messages' headers (drains the parking queue).
    pub async fn parked(&self) -> Vec<lakefleet::rabbitmq::parking::ParkHeaders> {
        let msgs = self.drain(&self.topology().parking).await;
        msgs.iter()
            .map(|d| lakefleet::rabbitmq::parking::ParkHeaders::from_table(d.properties.headers().as_ref(), None))
            .collect()
    }

    /// Uses the TOML catalog `toml` (written to a file) for every binary.
    pub fn with_catalog(mut self, toml: &str) -> Fleet {
        let path = tmpdir("catalog").join("catalog.toml");
        std::fs::write(&path, toml).unwrap();
        self.env.push(("LAKEFLEET_CATALOG".into(), path.to_str().unwrap().to_string()));
        self
    }
}

impl Fleet {
    /// Messages in `queue` (0 if it does not exist).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let conn = lapin::Connection::connect(AMQP, Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let n = match ch
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
        {
            Ok(q) => q.message_count(),
            Err(_) => 0,
        };
        let _ = conn.close(200, "".into()).await;
        n
    }

    /// Takes (and acks) every message of `queue`.
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let conn = lapin::Connection::connect(AMQP, Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Ok(Some(m)) = ch.basic_get(queue.into(), BasicGetOptions::default()).await {
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
            out.push(m.delivery);
        }
        let _ = conn.close(200, "".into()).await;
        out
    }

    pub async fn drain_tasks(&self, queue: &str) -> Vec<Task> {
        self.drain(queue).await.iter().map(|d| Task::decode(&d.data).unwrap()).collect()
    }

    /// Deletes both lanes' calendar queues of `delay` (declared by workers
    /// when a task first waits; [`Fleet::cleanup`] does not know them).
    pub async fn delete_wait_queues(&self, delay: Duration) {
        let conn = lapin::Connection::connect(AMQP, Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        for lane in lakefleet::task::Lane::ALL {
            let q = self.topology().wait_queue_in(lane, delay);
            let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
        }
        let _ = conn.close(200, "".into()).await;
    }

    /// Messages in both lanes' work queues.
    pub async fn work_len(&self) -> u32 {
        let topo = self.topology();
        self.queue_len(&topo.work).await + self.queue_len(&topo.work_high).await
    }

    /// Takes (and acks) every task of both lanes' work queues, the high lane's first.
    pub async fn drain_work(&self) -> Vec<Task> {
        let topo = self.topology();
        let mut tasks = self.drain_tasks(&topo.work_high).await;
        tasks.extend(self.drain_tasks(&topo.work).await);
        tasks
    }
}
