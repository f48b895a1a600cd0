//! Listeners and connection lifecycle: bind, accept under a connection cap,
//! run one task per connection, and drain on shutdown.

mod connection;
mod stats;
mod workers;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use connection::{Flow, Session};
pub use stats::{Counter, Stats};
pub use workers::{current_worker, Workers};

use crate::config::{Config, Limits};
use crate::frontend::{memcache::MemcacheSession, resp::RespSession};
use crate::router::Router;

/// State every connection shares.
pub struct Shared {
    pub router: Router,
    pub stats: Stats,
    pub limits: Limits,
    pub next_client_id: AtomicU64,
    /// Addresses actually bound (port 0 resolved), for INFO and tests.
    pub memcache_addr: Option<SocketAddr>,
    pub resp_addr: Option<SocketAddr>,
}

impl Shared {
    /// Memory backends' figures summed, for `stats` and INFO.
    pub fn memory_usage(&self) -> crate::backend::memory::Usage {
        let mut total = crate::backend::memory::Usage::default();
        for (_, backend) in self.router.backends() {
            let usage = backend.usage();
            total.items += usage.items;
            total.bytes += usage.bytes;
            total.capacity += usage.capacity;
            total.evictions += usage.evictions;
        }
        total
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {field} = {addr}: {source}")]
    Bind {
        field: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] crate::backend::BuildError),
}

/// A started server: its bound addresses, and a handle to stop it.
pub struct Server {
    pub memcache_addr: Option<SocketAddr>,
    pub resp_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

impl Server {
    /// Binds the configured listeners and serves connections on the caller's runtime.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        Self::start_on(config, Workers::current()).await
    }

    /// Binds the configured listeners and serves connections on `workers`.
    pub async fn start_on(config: &Config, workers: Workers) -> Result<Self, StartError> {
        let workers = Arc::new(workers);
        let router = Router::build(config)?;
        let memcache = bind("listen.memcache", &config.listen.memcache).await?;
        let resp = bind("listen.resp", &config.listen.resp).await?;
        let shared = Arc::new(Shared {
            router,
            stats: Stats::default(),
            limits: config.limits.clone(),
            next_client_id: AtomicU64::new(1),
            memcache_addr: memcache.as_ref().and_then(|l| l.local_addr().ok()),
            resp_addr: resp.as_ref().and_then(|l| l.local_addr().ok()),
        });
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(config.limits.max_connections));
        let listeners = [(memcache, Protocol::Memcache), (resp, Protocol::Resp)];
        for (listener, protocol) in listeners {
            let Some(listener) = listener else { continue };
            let ctx = AcceptContext {
                shared: shared.clone(),
                permits: permits.clone(),
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
                workers: workers.clone(),
            };
            tracker.spawn(accept_loop(listener, ctx, protocol));
        }
        tracker.spawn(sweep_expired(shared.clone(), shutdown.clone()));
        Ok(Self {
            memcache_addr: shared.memcache_addr,
            resp_addr: shared.resp_addr,
            shutdown,
            tracker,
            grace: Duration::from_secs(config.limits.shutdown_grace_seconds),
        })
    }

    /// Stops accepting, lets connections finish the requests they have read,
    /// and waits up to the grace period for them.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "connections still open after the grace period; exiting anyway");
        }
    }
}

async fn bind(
    field: &'static str,
    addr: &Option<String>,
) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            field,
            addr: addr.clone(),
            source,
        })?;
    tracing::info!(listener = field, addr = %listener.local_addr().map_or(addr.clone(), |a| a.to_string()), "listening");
    Ok(Some(listener))
}

#[derive(Clone, Copy)]
enum Protocol {
    Memcache,
    Resp,
}

struct AcceptContext {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    workers: Arc<Workers>,
}

async fn accept_loop(listener: TcpListener, ctx: AcceptContext, protocol: Protocol) {
    let AcceptContext {
        shared,
        permits,
        shutdown,
        tracker,
        workers,
    } = ctx;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.stats.rejected_connections.add(1);
            let refusal: &[u8] = match protocol {
                Protocol::Memcache => b"SERVER_ERROR Too many open connections\r\n",
                Protocol::Resp => b"-ERR max number of clients reached\r\n",
            };
            let _ = stream.write_all(refusal).await;
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        // Hand the socket to a worker: it must be re-registered with that
        // worker's reactor, so it crosses over as a std socket.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        shared.stats.current_connections.add(1);
        shared.stats.total_connections.add(1);
        tracker.spawn_on(
            async move {
                let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                    shared.stats.current_connections.sub(1);
                    return;
                };
                match protocol {
                    Protocol::Memcache => {
                        let session = MemcacheSession::new(shared.clone());
                        connection::serve(stream, session, shared.clone(), shutdown).await;
                    }
                    Protocol::Resp => {
                        let session = RespSession::new(shared.clone(), peer);
                        connection::serve(stream, session, shared.clone(), shutdown).await;
                    }
                }
                shared.stats.current_connections.sub(1);
                drop(permit);
            },
            workers.next(),
        );
    }
}

/// Expired items are invisible at once; this frees their memory without
/// waiting for eviction.
async fn sweep_expired(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for (_, backend) in shared.router.backends() {
            backend.sweep_expired().await;
        }
    }
}
