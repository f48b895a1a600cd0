//! The contract between the layers that serve connections (`server`,
//! `frontend`, `admin`) and what they serve: one generation of the running
//! configuration ([`Shared`]), the per-connection [`Session`] a frontend
//! implements, and what a turn of it asks of the connection task ([`Flow`]).
//! It sits below the listeners and the frontends, so neither reaches into
//! the other.

pub mod broker;
pub mod clients;
pub mod monitor;
pub mod request_buffers;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::BytesMut;

use crate::config::{Config, ListenerName};
use crate::metrics::Stats;
use crate::router::Router;

/// What connections share: one generation of the running configuration.
/// A reload builds the next generation and swaps it in ([`Server::reload`]);
/// a connection picks the new one up before its next batch of requests, so
/// requests already read finish on the routes they started on.
pub struct Shared {
    /// Every route: what the admin listener reports and reloads compare.
    pub router: Router,
    /// The routes memcached-protocol clients see (`routes[].listener`).
    pub memcache_router: Router,
    /// The routes RESP clients see.
    pub resp_router: Router,
    /// Process-wide counters, carried from generation to generation.
    pub stats: Arc<Stats>,
    /// The configuration this generation runs (limits, `/config`).
    pub config: Config,
    /// `[auth]` users with their passwords read.
    pub users: crate::config::Users,
    /// The admin listener's bearer token, when `listen.admin_token_file` is set.
    pub admin_token: Option<crate::config::AdminToken>,
    /// `[tls]`: the acceptor, and the listeners that use it.
    pub tls: Option<(crate::tls::Acceptor, Vec<ListenerName>)>,
    pub next_client_id: Arc<AtomicU64>,
    /// Every RESP client connected (CLIENT LIST, KILL, PAUSE), carried from
    /// generation to generation.
    pub clients: Arc<clients::Clients>,
    /// Addresses actually bound (port 0 resolved), for INFO and tests.
    pub memcache_addr: Option<SocketAddr>,
    pub resp_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
}

impl Shared {
    /// The TLS acceptor, if `listener` speaks TLS.
    pub fn tls_for(&self, listener: ListenerName) -> Option<&crate::tls::Acceptor> {
        let (acceptor, listeners) = self.tls.as_ref()?;
        listeners.contains(&listener).then_some(acceptor)
    }

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

/// The process's figures at one instant: read once per request for them
/// and shown three ways — memcached `stats`, redis `INFO` and `/metrics` —
/// so the three cannot drift apart.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub uptime_seconds: u64,
    pub current_connections: u64,
    pub total_connections: u64,
    pub rejected_connections: u64,
    /// Client commands read, both protocols.
    pub commands: u64,
    /// Stores (memcached set/add/..., redis SET and the like).
    pub sets: u64,
    pub get_hits: u64,
    pub get_misses: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub auth_attempts: u64,
    pub auth_failures: u64,
    /// The memory backends' figures, summed.
    pub memory: crate::backend::memory::Usage,
    pub max_connections: usize,
    pub worker_threads: usize,
}

impl Shared {
    pub fn report(&self) -> Report {
        let stats = &self.stats;
        Report {
            uptime_seconds: stats.uptime_seconds(),
            current_connections: stats.current_connections.get(),
            total_connections: stats.total_connections.get(),
            rejected_connections: stats.rejected_connections.get(),
            commands: stats.commands.get(),
            sets: stats.sets.get(),
            get_hits: stats.get_hits.get(),
            get_misses: stats.get_misses.get(),
            bytes_read: stats.bytes_read.get(),
            bytes_written: stats.bytes_written.get(),
            auth_attempts: stats.auth_attempts.get(),
            auth_failures: stats.auth_failures.get(),
            memory: self.memory_usage(),
            max_connections: self.config.limits.max_connections,
            worker_threads: crate::workers::worker_count(),
        }
    }
}

/// The current generation, swapped atomically by a reload.
pub type Current = Arc<ArcSwap<Shared>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Close after writing what is buffered (quit, or an unframeable stream).
    Close,
    /// Write what is buffered, then go on with the requests still in the
    /// input before reading more: the turn reached limits.max_pipeline or
    /// limits.max_output_buffer.
    Yield,
}

/// A protocol frontend's per-connection state.
pub trait Session: Send {
    /// Answers every complete request in `input`, consuming it and appending
    /// replies to `output`, in order.
    fn process(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> impl Future<Output = Flow> + Send;

    /// The generation of the configuration this session runs on; replaced
    /// between batches when a reload swaps in a new one.
    fn shared_mut(&mut self) -> &mut Arc<Shared>;

    /// Whether the session may send something unasked now (it subscribes,
    /// monitors or tracks): only then is [`Self::pushed`] awaited.
    fn listens(&self) -> bool {
        false
    }

    /// What the session sends unasked (pub/sub messages, MONITOR's lines),
    /// appended to `output`; awaited beside the client's next request, so
    /// it must be cancel-safe. False: the session must close. Never
    /// resolves when the session has nothing to send.
    fn pushed(&mut self, output: &mut BytesMut) -> impl Future<Output = bool> + Send {
        let _ = output;
        std::future::pending()
    }

    /// Whether what `pushed` gave may still be sent, in the generation the
    /// session now runs on (a reload may have removed the user, or taken
    /// away the channels it listens to); false: close instead.
    fn still_entitled(&mut self) -> bool {
        true
    }

    /// Cancelled when the connection must close at once (CLIENT KILL).
    fn killed(&self) -> Option<tokio_util::sync::CancellationToken> {
        None
    }

    /// Set by a turn as it starts waiting for as long as the client asked
    /// (a blocking pop): the connection task then watches the client's
    /// socket meanwhile, so that a client gone away ends the wait (and the
    /// redis connection it holds) instead of leaving it.
    fn long_waits(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

/// Where a client connected from, as CLIENT LIST shows it.
#[derive(Clone, Debug)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A Unix socket client; redis shows the socket's path for both ends.
    Unix(Arc<Path>),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(address) => write!(f, "{address}"),
            Peer::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}
