//! Connection workers: one single-threaded runtime per core, each driving the
//! connections handed to it, like memcached's worker threads. A connection's
//! reads, processing and writes stay on one core, with no work-stealing or
//! cross-thread wake-ups on the per-request path.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;

pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` threads, each running its own current-thread runtime
    /// until the process exits.
    pub fn spawn(count: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("keyway-worker-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a worker runtime starts");
                    let _ = sender.send(runtime.handle().clone());
                    runtime.block_on(std::future::pending::<()>());
                })?;
            handles.push(receiver.recv().expect("worker thread started"));
        }
        Ok(Self::from_handles(handles))
    }

    /// Runs connections on the caller's runtime (tests, embedding).
    pub fn current() -> Self {
        Self::from_handles(vec![Handle::current()])
    }

    fn from_handles(handles: Vec<Handle>) -> Self {
        Self {
            handles,
            next: AtomicUsize::new(0),
        }
    }

    /// The worker for the next connection, round-robin.
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}
