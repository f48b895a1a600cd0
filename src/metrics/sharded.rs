//! Per-thread shards: the one way Keyway counts on the hot path. Each thread
//! adds to its own cache line, so counting a request never bounces a line
//! between cores; reading (INFO, `stats`, a scrape) sums the shards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const SHARDS: usize = 16;

/// A value aligned to its own cache line pair (adjacent-line prefetch).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// `T` once per shard; a thread always uses the same shard.
pub struct Sharded<T> {
    shards: Box<[Padded<T>; SHARDS]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            shards: Box::default(),
        }
    }
}

/// A small per-thread number, for picking a shard.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SLOT.with(|slot| *slot)
}

impl<T> Sharded<T> {
    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        &self.shards[thread_slot()].0
    }

    /// Every shard, for summing.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|padded| &padded.0)
    }
}

/// A counter that many threads add to and few read.
#[derive(Default)]
pub struct Counter(Sharded<AtomicU64>);

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.local().fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(&self, n: u64) {
        self.0.local().fetch_sub(n, Ordering::Relaxed);
    }

    /// Back to zero. Adds racing with it may survive it; a reset is an
    /// operator's request, not an accounting boundary.
    pub fn reset(&self) {
        for cell in self.0.iter() {
            cell.store(0, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, cell| {
            sum.wrapping_add(cell.load(Ordering::Relaxed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_sum() {
        let counter = std::sync::Arc::new(Counter::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.add(2);
                    }
                    counter.sub(1000);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.get(), 20 * 1000);
    }
}
