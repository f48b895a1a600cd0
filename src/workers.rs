//! Connection workers: one single-threaded runtime per core, each driving the
//! connections handed to it, like memcached's worker threads. A connection's
//! reads, processing and writes stay on one core, with no work-stealing or
//! cross-thread wake-ups on the per-request path.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;

/// How many connection workers run (0 before any are spawned).
static WORKER_COUNT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WORKER_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The calling thread's worker index and the number of workers, when the
/// caller is a connection worker. Backend pools use it to give each worker
/// connections of its own, so a request and its backend connection's tasks
/// run on one thread.
pub fn current_worker() -> Option<(usize, usize)> {
    let index = WORKER_INDEX.with(Cell::get)?;
    Some((index, WORKER_COUNT.load(Ordering::Relaxed)))
}

/// How many connection worker threads run.
pub fn worker_count() -> usize {
    WORKER_COUNT.load(Ordering::Relaxed).max(1)
}

pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` threads, each running its own current-thread runtime
    /// until the process exits.
    pub fn spawn(count: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(count);
        WORKER_COUNT.store(count.max(1), Ordering::Relaxed);
        for i in 0..count.max(1) {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("keyway-worker-{i}"))
                .spawn(move || {
                    WORKER_INDEX.with(|w| w.set(Some(i)));
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

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The worker for the next connection, round-robin, and its index.
    pub fn next(&self) -> (usize, &Handle) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        (i, &self.handles[i])
    }
}
