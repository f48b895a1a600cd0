//! Listeners and connection lifecycle: bind, accept under a connection cap,
//! run one task per connection, and drain on shutdown.

mod accept;
mod listener;
mod serve;

use accept::{accept_loop, AcceptContext};

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use listener::{Endpoint, Listener, Protocol, Spec};

use crate::config::{AdminToken, Config, ConfigError, ListenerName, RouteListener};
use crate::metrics::Stats;
use crate::router::Router;
use crate::session::{Current, Shared};
use crate::workers::Workers;

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
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Reads `[tls]`'s certificate and key (at start and on every reload, so a
/// renewed certificate is a SIGHUP away).
fn load_tls(
    config: &Config,
) -> Result<Option<(crate::tls::Acceptor, Vec<ListenerName>)>, StartError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let acceptor =
        crate::tls::acceptor(&tls.cert_file, &tls.key_file, tls.client_ca_file.as_deref())
            .map_err(|message| ConfigError {
                field: "tls".into(),
                message,
            })?;
    Ok(Some((acceptor, tls.listeners.clone())))
}

/// How long a client has to complete a TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// A running accept loop: what it was configured with, where it is bound,
/// and how to stop it when a reload moves it.
struct Running {
    configured: Spec,
    bound: Option<SocketAddr>,
    described: String,
    stop: CancellationToken,
}

/// A started server: its bound addresses, and a handle to reload and stop it.
pub struct Server {
    pub memcache_addr: Option<SocketAddr>,
    pub resp_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub sentinel_addr: Option<SocketAddr>,
    current: Current,
    listeners: tokio::sync::Mutex<[Option<Running>; Endpoint::ALL.len()]>,
    permits: Arc<Semaphore>,
    max_connections: std::sync::atomic::AtomicUsize,
    workers: Arc<Workers>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: std::sync::Mutex<Duration>,
}

impl Server {
    /// Binds the configured listeners and serves connections on the caller's runtime.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        Self::start_on(config, Workers::current()).await
    }

    /// Binds the configured listeners and serves connections on `workers`.
    pub async fn start_on(config: &Config, workers: Workers) -> Result<Self, StartError> {
        let router = Router::build(config)?;
        router.settle_caches().await;
        let mut bound: [Option<(Spec, Listener)>; Endpoint::ALL.len()] = Default::default();
        for endpoint in Endpoint::ALL {
            if let Some(spec) = endpoint.configured(config) {
                let listener = Listener::bind(endpoint, &spec, None).await?;
                bound[endpoint as usize] = Some((spec, listener));
            }
        }
        let tcp_addr = |endpoint: Endpoint| {
            bound[endpoint as usize]
                .as_ref()
                .and_then(|(_, listener)| listener.tcp_addr())
        };
        let addrs = Endpoint::ALL.map(tcp_addr);
        let shared = first_generation(config, router, &addrs)?;
        let sentinel_addr = tcp_addr(Endpoint::Sentinel);
        let server = Self {
            sentinel_addr,
            memcache_addr: shared.memcache_addr,
            resp_addr: shared.resp_addr,
            admin_addr: shared.admin_addr,
            current: Arc::new(ArcSwap::from_pointee(shared)),
            listeners: tokio::sync::Mutex::new(Default::default()),
            permits: Arc::new(Semaphore::new(config.limits.max_connections)),
            max_connections: config.limits.max_connections.into(),
            workers: Arc::new(workers),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            grace: Duration::from_secs(config.limits.shutdown_grace_seconds).into(),
        };
        {
            let mut listeners = server.listeners.lock().await;
            for endpoint in Endpoint::ALL {
                if let Some((spec, listener)) = bound[endpoint as usize].take() {
                    listeners[endpoint as usize] = Some(server.serve(endpoint, spec, listener));
                }
            }
        }
        server.tracker.spawn(sweep_expired(
            server.current.clone(),
            server.shutdown.clone(),
        ));
        server.tracker.spawn(count_sessions(
            server.current.clone(),
            server.shutdown.clone(),
        ));
        Ok(server)
    }

    /// The running generation (figures, router, configuration).
    pub fn current(&self) -> Arc<Shared> {
        self.current.load_full()
    }

    fn serve(&self, endpoint: Endpoint, configured: Spec, listener: Listener) -> Running {
        let stop = self.shutdown.child_token();
        let bound = listener.tcp_addr();
        let described = listener.describe();
        let protocol = endpoint.protocol();
        if protocol == Protocol::Admin {
            let listener = listener
                .into_tcp()
                .expect("the admin listener is configured as a TCP address");
            self.tracker.spawn(crate::admin::serve(
                listener,
                self.current.clone(),
                stop.clone(),
            ));
        } else {
            let ctx = AcceptContext {
                current: self.current.clone(),
                permits: self.permits.clone(),
                shutdown: self.shutdown.clone(),
                stop: stop.clone(),
                tracker: self.tracker.clone(),
                workers: self.workers.clone(),
            };
            self.tracker.spawn(accept_loop(listener, ctx, protocol));
        }
        Running {
            configured,
            bound,
            described,
            stop,
        }
    }

    /// Replaces the running configuration with `config` (already validated):
    /// builds its routes, keeping every backend whose settings did not change
    /// with its connections; binds listeners whose address changed; then
    /// swaps it in atomically. On any error the running one stays, untouched.
    pub async fn reload(&self, config: Config) -> Result<(), StartError> {
        let result = self.try_reload(config).await;
        let stats = self.current.load().stats.clone();
        match &result {
            Ok(()) => {
                stats.reloads_succeeded.add(1);
                stats.last_reload_success.store(
                    crate::op::now_ms() / 1000,
                    std::sync::atomic::Ordering::Relaxed,
                );
                tracing::info!("configuration reloaded");
            }
            Err(error) => {
                stats.reloads_failed.add(1);
                tracing::error!(%error, "configuration not reloaded; the running one stays");
            }
        }
        result
    }

    /// Counts and logs a reload whose configuration did not validate.
    pub fn reload_refused(&self, why: &str) {
        self.current.load().stats.reloads_failed.add(1);
        tracing::error!(
            error = why,
            "configuration not reloaded; the running one stays"
        );
    }

    async fn try_reload(&self, config: Config) -> Result<(), StartError> {
        let mut listeners = self.listeners.lock().await;
        let old = self.current.load_full();
        let router = Router::rebuild(&config, Some(&old.router))?;
        router.settle_caches().await;
        // Bind every moved listener before touching anything, so a failure
        // leaves the old ones serving.
        let mut moved = Vec::new();
        for endpoint in Endpoint::ALL {
            let wanted = endpoint.configured(&config);
            let running = listeners[endpoint as usize].as_ref().map(|r| &r.configured);
            if wanted.as_ref() != running {
                let listener = match wanted {
                    Some(spec) => {
                        let listener = Listener::bind(endpoint, &spec, running).await?;
                        Some((spec.clone(), listener))
                    }
                    None => None,
                };
                moved.push((endpoint, listener));
            }
        }
        // Each TCP address as it will be: the moved listener's, or the running one's.
        let tcp_addr = |endpoint: Endpoint| match moved.iter().find(|(e, _)| *e == endpoint) {
            Some((_, listener)) => listener.as_ref().and_then(|(_, l)| l.tcp_addr()),
            None => listeners[endpoint as usize].as_ref().and_then(|r| r.bound),
        };
        let next = Shared {
            memcache_router: router.for_listener(&config, RouteListener::Memcache),
            resp_router: router.for_listener(&config, RouteListener::Resp),
            router,
            stats: old.stats.clone(),
            users: crate::config::Users::load(&config.auth)?,
            admin_token: AdminToken::load(config.listen.admin_token_file.as_deref())?,
            tls: load_tls(&config)?,
            config: config.clone(),
            next_client_id: old.next_client_id.clone(),
            clients: old.clients.clone(),
            memcache_addr: tcp_addr(Endpoint::Memcache),
            resp_addr: tcp_addr(Endpoint::Resp),
            admin_addr: tcp_addr(Endpoint::Admin),
        };
        self.current.store(Arc::new(next));
        for (endpoint, listener) in moved {
            if let Some(old) = listeners[endpoint as usize].take() {
                tracing::info!(listener = endpoint.field(), addr = %old.described, "listener closed (moved by reload)");
                old.stop.cancel();
            }
            if let Some((configured, listener)) = listener {
                listeners[endpoint as usize] = Some(self.serve(endpoint, configured, listener));
            }
        }
        self.resize_connection_cap(config.limits.max_connections);
        *self.grace.lock().expect("not poisoned") =
            Duration::from_secs(config.limits.shutdown_grace_seconds);
        Ok(())
    }

    /// Moves the connection cap: open connections stay; new ones count against the new cap.
    fn resize_connection_cap(&self, wanted: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let before = self.max_connections.swap(wanted, Relaxed);
        if wanted > before {
            self.permits.add_permits(wanted - before);
        } else if wanted < before {
            // Permits held by open connections are forgotten as they return.
            let forgotten = self.permits.forget_permits(before - wanted);
            if forgotten < before - wanted {
                let permits = self.permits.clone();
                let mut owed = (before - wanted - forgotten) as u32;
                tokio::spawn(async move {
                    while owed > 0 {
                        match permits.acquire_many(owed.min(1024)).await {
                            Ok(permit) => {
                                owed -= permit.num_permits() as u32;
                                permit.forget();
                            }
                            Err(_) => return,
                        }
                    }
                });
            }
        }
    }

    /// Stops accepting, lets connections finish the requests they have read,
    /// and waits up to the grace period for them.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        let grace = *self.grace.lock().expect("not poisoned");
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "connections still open after the grace period; exiting anyway"
            );
        }
    }
}

/// Refreshes the session gauges every `sessions.inventory_interval_seconds`
/// (read again after each run, so a reload changes it).
async fn count_sessions(current: Current, shutdown: CancellationToken) {
    loop {
        let seconds = current.load().config.sessions.inventory_interval_seconds;
        let wait = Duration::from_secs(if seconds == 0 { 60 } else { seconds });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        if seconds == 0 {
            continue;
        }
        let shared = current.load_full();
        if let Err(error) = crate::admin::sessions::summary(&shared).await {
            tracing::warn!(%error, "cannot count the sessions for /metrics");
        }
    }
}

/// The first generation of the running configuration, with the addresses
/// the listeners took (by `Endpoint`).
fn first_generation(
    config: &Config,
    router: Router,
    addrs: &[Option<std::net::SocketAddr>; Endpoint::ALL.len()],
) -> Result<Shared, StartError> {
    Ok(Shared {
        memcache_router: router.for_listener(config, RouteListener::Memcache),
        resp_router: router.for_listener(config, RouteListener::Resp),
        router,
        stats: Arc::new(Stats::default()),
        users: crate::config::Users::load(&config.auth)?,
        admin_token: AdminToken::load(config.listen.admin_token_file.as_deref())?,
        tls: load_tls(config)?,
        config: config.clone(),
        next_client_id: Arc::new(AtomicU64::new(1)),
        clients: Arc::default(),
        memcache_addr: addrs[Endpoint::Memcache as usize],
        resp_addr: addrs[Endpoint::Resp as usize],
        admin_addr: addrs[Endpoint::Admin as usize],
    })
}

/// Expired items are invisible at once; this frees their memory without
/// waiting for eviction.
async fn sweep_expired(current: Current, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let shared = current.load_full();
        for (_, backend) in shared.router.backends() {
            backend.sweep_expired().await;
        }
    }
}
