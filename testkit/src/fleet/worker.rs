//! A worker process of the fleet: started from the workspace's binary, its log,
//! its HTTP endpoints, signals and kills.

use super::*;

/// A running worker; killed (SIGKILL) when dropped.
pub struct WorkerProc {
    pub child: Option<Child>,
    pub addr: String,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap();
        assert!(st.success());
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        self.signal("-TERM");
        self.wait(within)
    }

    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        let child = self.child.as_mut().unwrap();
        while start.elapsed() < within {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr);
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(&url).await {
                let code = r.status().as_u16();
                return (code, r.text().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("worker at {} never answered; log:\n{}", self.addr, self.log());
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }

    /// Waits (bounded) until /readyz says ready.
    pub async fn ready(&self) {
        for _ in 0..100 {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("worker never became ready; log:\n{}", self.log());
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
