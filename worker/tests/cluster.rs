//! A RabbitMQ cluster of three nodes on this machine (beside its own broker,
//! which this leaves alone: `scripts/rabbit-cluster.sh`), and a backfill of
//! 40 partitions by 3 workers whose `AMQP_URL` lists the three nodes; the
//! node that leads the work queue is stopped mid-run. Heavy (three Erlang
//! nodes), so it runs only when `LAKEFLEET_DISRUPTIVE_TESTS=1` asks (CI sets it).

use std::process::Command;
use std::time::{Duration, Instant};

use lakefleet_testkit::*;

fn cluster(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/rabbit-cluster.sh");
    let out = Command::new("bash").arg(script).args(args).output().expect("running rabbit-cluster.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rabbit-cluster.sh {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Stops the cluster's nodes and removes their data, even when the test fails.
struct ClusterDown;
impl Drop for ClusterDown {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/rabbit-cluster.sh");
        let _ = Command::new("bash").arg(script).arg("stop").status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_survives_the_loss_of_the_node_that_leads_the_work_queue() {
    if !disruptive("a_backfill_survives_the_loss_of_the_node_that_leads_the_work_queue") {
        return;
    }
    let _down = ClusterDown;
    cluster(&["start"]);
    let nodes: Vec<String> = (1..=3).map(|i| format!("amqp://guest:guest@127.0.0.1:{}/%2f", 5680 + i)).collect();
    let src = Source::start().await;
    let mut f = Fleet::local("cluster");
    f.env.push(("AMQP_URL".into(), nodes.join(",")));
    let expect = serve_mta_weeks(&src, 40, 200, 40, &[]);
    // Each download takes about 300 ms: the run lasts long enough to lose a node in it.
    src.fault_every(Fault::Slow(3, Duration::from_millis(300)));
    let workers: Vec<WorkerProc> = (0..3).map(|_| f.worker(&["--concurrency", "2"])).collect();
    for w in &workers {
        w.ready().await;
    }
    let out = f.backfill_mta(&src, week(0), week(39), &[]);
    assert_eq!(out.status.code(), Some(0));
    let id = backfill_id(&out);
    let state = f.state().await;
    eventually(Duration::from_secs(60), "a quarter of the partitions done", || {
        let state = state.clone();
        let id = id.clone();
        async move { state.backfill(&id).await.ok().flatten().is_some_and(|s| s.done >= 10) }
    })
    .await;
    let leader = cluster(&["leader", &f.topology().work]).trim().to_string();
    assert!(leader.starts_with("lfc"), "the work queue's leader: {leader:?}");
    cluster(&["stop-node", &leader]);
    let lost = Instant::now();
    // Every worker is consuming again, from a node that is up, within seconds.
    for w in &workers {
        eventually(Duration::from_secs(30), "the worker reconnected", || async {
            metric(&w.metrics().await, "lakefleet_connection_up", &[("service", "rabbitmq")]) == 1.0
        })
        .await;
    }
    eprintln!("workers consuming again {:?} after {leader} stopped", lost.elapsed());
    let s = wait_finished(&f, &out, Duration::from_secs(180)).await;
    assert_eq!((s.done, s.parked.len()), (40, 0), "{s:?}");
    // Each partition exactly once in the lake, with the source's rows and checksum.
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}
