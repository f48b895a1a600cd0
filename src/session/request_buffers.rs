//! `limits.request_buffers`: a budget for the bytes every connection holds
//! in requests it has begun to read but not finished (a large `SET` value
//! arriving slowly). Each connection counts what its input buffer holds;
//! while the sum is over the budget, a connection holding more than
//! [`SMALL_REQUEST`] stops reading — its client then waits on TCP, as a
//! client of a busy server does — except one: the holder of the single
//! pass, which reads on until its request is complete, so that the requests
//! held are finished one at a time instead of all waiting for each other.
//! Connections with small or no partial requests (ordinary traffic) read
//! as always. So the bytes held stay under the budget plus one request in
//! progress plus [`SMALL_REQUEST`] per connection.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// A partial request this small never waits: ordinary commands, and
/// everything a client that has not authenticated may send.
pub const SMALL_REQUEST: usize = 64 * 1024;

/// How long the pass holder may send nothing before it is disconnected:
/// a client that stops mid-request must not stall every large writer.
pub const PASS_PATIENCE: Duration = Duration::from_secs(10);

/// The process-wide count (one for every generation of the configuration).
pub struct RequestBuffers {
    held: AtomicUsize,
    pass: Arc<Semaphore>,
    freed: Notify,
}

pub static REQUEST_BUFFERS: LazyLock<RequestBuffers> = LazyLock::new(|| RequestBuffers {
    held: AtomicUsize::new(0),
    pass: Arc::new(Semaphore::new(1)),
    freed: Notify::new(),
});

impl RequestBuffers {
    /// Bytes held in partial requests by all connections now.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }
}

/// What one connection has counted, and its pass if it holds it.
#[derive(Default)]
pub struct Holding {
    counted: usize,
    pass: Option<OwnedSemaphorePermit>,
}

impl Holding {
    /// Counts `held` bytes (what the input buffer holds of a partial
    /// request; 0 once it is complete). A complete request gives the pass
    /// back (what is left is the start of the next one, which waits its turn).
    ///
    /// Only large partial requests are counted: ordinary traffic, whose
    /// turns often end mid-command, touches no shared counter and no lock
    /// (the bound above allows [`SMALL_REQUEST`] per connection for it).
    pub fn update(&mut self, held: usize) {
        let held = if held > SMALL_REQUEST { held } else { 0 };
        if held == self.counted {
            return;
        }
        let budget = &*REQUEST_BUFFERS;
        if held > self.counted {
            budget.held.fetch_add(held - self.counted, Relaxed);
        } else {
            budget.held.fetch_sub(self.counted - held, Relaxed);
            budget.freed.notify_waiters();
        }
        self.counted = held;
        if held == 0 && self.pass.take().is_some() {
            budget.freed.notify_waiters();
        }
    }

    pub fn has_pass(&self) -> bool {
        self.pass.is_some()
    }

    /// Whether this connection must wait before it reads, under a budget
    /// of `limit` bytes: over the budget with a large partial request and
    /// no pass ([`Self::wait`], then ask again).
    pub fn must_wait(&self, limit: usize) -> bool {
        self.counted > 0 && self.pass.is_none() && REQUEST_BUFFERS.held() > limit
    }

    /// Waits until the pass is this connection's or bytes were freed
    /// (then the caller asks [`Self::must_wait`] again).
    pub async fn wait(&mut self, limit: usize) {
        let budget = &*REQUEST_BUFFERS;
        let freed = budget.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        // Freed between the caller's look and `enable`: no wake-up will come.
        if budget.held() <= limit {
            return;
        }
        tokio::select! {
            permit = budget.pass.clone().acquire_owned() => {
                self.pass = permit.ok();
            }
            () = freed => {}
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.update(0);
    }
}
