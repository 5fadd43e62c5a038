//! The lake as `delta_kernel`'s default engine sees it: the same store and
//! root URL, and a runtime of its own for the engine's blocking calls.

use super::*;

/// `url` as a folder URL (its path ends in `/`).
pub(super) fn folder_url(url: &url::Url) -> url::Url {
    let mut u = url.clone();
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

impl KernelLake {
    pub(super) fn new(store: Arc<dyn ObjectStore>, root: url::Url) -> KernelLake {
        KernelLake { store, root, engine: std::sync::OnceLock::new() }
    }
}

/// The lake as `delta_kernel` sees it: a store without our key prefix (the
/// kernel maps a URL's path to the store's path) and the lake's root URL.
pub struct KernelLake {
    store: Arc<dyn ObjectStore>,
    /// The lake's root as a folder URL (`file:///abs/lake/`, `s3://bucket/prefix/`).
    pub root: url::Url,
    engine: std::sync::OnceLock<(Arc<crate::table::Engine>, KernelRuntime)>,
}

/// The kernel's runtime, shut down without waiting when the lake goes (a
/// lake may be dropped on an async task, where a runtime cannot be dropped).
pub(super) struct KernelRuntime(Option<tokio::runtime::Runtime>);

impl Drop for KernelRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for KernelLake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelLake").field("root", &self.root.as_str()).finish()
    }
}

impl KernelLake {
    /// The kernel's engine over this lake (made at first use: it starts the
    /// kernel's I/O thread).
    pub fn engine(&self) -> Arc<crate::table::Engine> {
        self.engine
            .get_or_init(|| {
                use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("delta-kernel-io")
                    .enable_all()
                    .build()
                    .expect("a runtime for the Delta kernel's I/O");
                let executor = TokioMultiThreadExecutor::new(runtime.handle().clone());
                let engine = delta_kernel_default_engine::DefaultEngine::builder(self.store.clone())
                    .with_task_executor(Arc::new(executor))
                    .build();
                (Arc::new(engine), KernelRuntime(Some(runtime)))
            })
            .0
            .clone()
    }

    /// The folder URL of `key` (a dataset's table root: `{root}{key}/`).
    pub fn url_of(&self, key: &str) -> url::Url {
        let mut u = self.root.clone();
        let path = format!("{}{}/", u.path(), key.trim_matches('/'));
        u.set_path(&path);
        u
    }
}
