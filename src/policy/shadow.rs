//! `shadow`: serve from the primary; mirror some traffic to a shadow.
//!
//! Every request is answered by the primary alone. A `fraction` of requests
//! (every one at 1.0; only writes with `writes_only`) is repeated on the
//! shadow in a background task after the primary has answered, so the
//! shadow adds neither latency nor errors. Each mirrored request's answer is
//! compared with the primary's (values and flags for reads, the outcome for
//! writes; never CAS ids or exact TTLs), and the counts are in `INFO keyway`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Member;
use crate::backend::{Answer, Call, Execute, Result};

/// Settings of a [`Shadow`].
pub struct ShadowOptions {
    /// Share of requests mirrored, 0.0 to 1.0.
    pub fraction: f64,
    pub writes_only: bool,
}

/// What mirroring has seen so far.
#[derive(Debug, Default)]
pub struct ShadowCounts {
    pub mirrored: AtomicU64,
    pub mismatches: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Shadow {
    primary: Member,
    shadow: Member,
    options: ShadowOptions,
    /// Requests seen, for deterministic sampling.
    seen: AtomicU64,
    counts: Arc<ShadowCounts>,
}

/// How two answers are compared: what a client would notice, not CAS ids or
/// TTLs that differ between stores by nature.
impl Shadow {
    pub fn new(primary: Member, shadow: Member, options: ShadowOptions) -> Self {
        Self {
            primary,
            shadow,
            options,
            seen: AtomicU64::new(0),
            counts: Arc::default(),
        }
    }

    pub fn counts(&self) -> &ShadowCounts {
        &self.counts
    }

    /// Whether this request is one of the `fraction` mirrored: exactly that
    /// share over any run of requests, without randomness.
    fn sampled(&self, write: bool) -> bool {
        if self.options.writes_only && !write {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        let fraction = self.options.fraction;
        (n * fraction).floor() != ((n + 1.0) * fraction).floor()
    }

    /// Repeats a request on the shadow in the background and compares its
    /// answer with the primary's.
    /// Sends `call` (sampled before the primary ran it) to the shadow
    /// member once the primary has answered it, and counts whether the
    /// shadow answered alike.
    fn mirror(&self, call: Call<'static>, primary: &Result<Answer>) {
        let Ok(expected) = primary else { return };
        let expected = expected.clone();
        let shadow = self.shadow.clone();
        let counts = self.counts.clone();
        tokio::spawn(async move {
            counts.mirrored.fetch_add(1, Ordering::Relaxed);
            match shadow.execute(call).await {
                Ok(got) if got.same(&expected) => {}
                Ok(_) => {
                    counts.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::debug!(%error, "shadow: mirrored request failed");
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

impl Execute for Shadow {
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        // Listings are not compared: the two stores hold different keys.
        // Only a sampled call is copied (its keys owned, to outlive this one).
        let copy =
            (!call.lists() && self.sampled(call.writes())).then(|| call.clone().into_owned());
        let result = self.primary.execute(call).await;
        if let Some(copy) = copy {
            self.mirror(copy, &result);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::backend::AnyBackend;
    use crate::policy::{Node, Target};

    fn memory() -> Member {
        Member(Target::new(
            "memory",
            Node::Backend(Arc::new(AnyBackend::Memory(MemoryBackend::new(1 << 24)))),
        ))
    }

    #[test]
    fn sampling_mirrors_exactly_the_fraction() {
        for (fraction, writes_only, write, want) in [
            (0.25, false, false, 25),
            (1.0, false, false, 100),
            (0.0, false, true, 0),
            (0.5, true, true, 50),
            (1.0, true, false, 0),
        ] {
            let shadow = Shadow::new(
                memory(),
                memory(),
                ShadowOptions {
                    fraction,
                    writes_only,
                },
            );
            let sampled = (0..100).filter(|_| shadow.sampled(write)).count();
            assert_eq!(sampled, want, "{fraction} {writes_only} {write}");
        }
    }
}
