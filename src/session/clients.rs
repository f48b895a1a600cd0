//! Every RESP client connected to this process, as CLIENT LIST shows them
//! and CLIENT KILL ends them, and CLIENT PAUSE's pause. One registry for
//! the process: it outlives reloads, as the connections do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// One connected client.
pub struct Client {
    pub id: u64,
    /// Its address and the listener's, as CLIENT LIST shows them.
    pub addr: String,
    pub laddr: String,
    /// `N` (TCP) or `U` (a Unix socket).
    pub flags: char,
    /// As MONITOR's lines name it: `127.0.0.1:5000`, `unix:/path`.
    pub monitor_name: String,
    /// The redis client id of its pub/sub connection (else its tracking
    /// connection); -1: none. What `CLIENT TRACKING ... REDIRECT` to it
    /// names on redis.
    pub redis_connection: std::sync::atomic::AtomicI64,
    pub connected: Instant,
    /// Cancelled by CLIENT KILL: the connection closes.
    pub killed: CancellationToken,
    /// Set when it starts a blocking pop (see `Session::long_waits`).
    pub long_wait: Arc<AtomicBool>,
    /// What it last told Keyway about itself (changed by CLIENT SETNAME,
    /// SELECT, HELLO, AUTH...; not by each command).
    pub state: Mutex<ClientState>,
}

/// The parts of a client's state CLIENT LIST shows.
#[derive(Clone, Default)]
pub struct ClientState {
    pub name: Option<Bytes>,
    pub db: u8,
    pub resp: u8,
    pub user: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Channels, patterns and shard channels it is subscribed to.
    pub subscriptions: [usize; 3],
    /// MONITOR.
    pub monitor: bool,
}

impl Client {
    /// A client connected from `peer` to the RESP listener at `listener`,
    /// shown as redis shows it: a Unix socket client has the socket's
    /// path, port 0, at both ends, and flag U.
    pub fn new(id: u64, peer: &super::Peer, listener: Option<std::net::SocketAddr>) -> Self {
        let (addr, laddr, flags, monitor_name) = match peer {
            super::Peer::Tcp(peer) => (
                peer.to_string(),
                listener.map(|a| a.to_string()).unwrap_or_default(),
                'N',
                peer.to_string(),
            ),
            super::Peer::Unix(path) => {
                let end = format!("{}:0", path.display());
                (end.clone(), end, 'U', format!("unix:{}", path.display()))
            }
        };
        Self {
            id,
            addr,
            laddr,
            flags,
            monitor_name,
            redis_connection: std::sync::atomic::AtomicI64::new(-1),
            connected: Instant::now(),
            killed: CancellationToken::new(),
            long_wait: Arc::default(),
            state: Mutex::new(ClientState {
                resp: 2,
                ..ClientState::default()
            }),
        }
    }

    /// Its line in CLIENT LIST and CLIENT INFO (redis 7.0's fields; Keyway
    /// keeps no per-connection buffers' figures, which show 0). `multi` and
    /// `cmd` are the asking client's own; others show -1 and NULL.
    pub fn line(&self, multi: i64, cmd: &str) -> String {
        let state = self.state.lock().clone();
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let user = state.user.as_ref().map_or("default".into(), |u| {
            String::from_utf8_lossy(u).into_owned()
        });
        // redis's letters: O monitors, P subscribed, U a Unix socket, N none.
        let [sub, psub, ssub] = state.subscriptions;
        let mut flags = String::new();
        if state.monitor {
            flags.push('O');
        }
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        if self.flags == 'U' || flags.is_empty() {
            flags.push(self.flags);
        }
        // What keeps a listening client busy, as redis shows its last command.
        let cmd = match () {
            _ if cmd != "NULL" => cmd,
            _ if state.monitor => "monitor",
            _ if sub > 0 => "subscribe",
            _ if psub > 0 => "psubscribe",
            _ if ssub > 0 => "ssubscribe",
            _ => cmd,
        };
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle=0 flags={flags} db={} sub={sub} \
             psub={psub} ssub={ssub} multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 \
             rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={cmd} user={user} redir=-1 \
             resp={} lib-name={} lib-ver={}\n",
            self.id,
            self.addr,
            self.laddr,
            text(&state.name),
            self.connected.elapsed().as_secs(),
            state.db,
            state.resp,
            text(&state.lib_name),
            text(&state.lib_ver),
        )
    }
}

/// The registry.
pub struct Clients {
    by_id: Mutex<BTreeMap<u64, Arc<Client>>>,
    /// CLIENT PAUSE: until when (ms since `epoch`; 0: not paused), and
    /// whether every command waits or only writes.
    paused_until: AtomicU64,
    pause_all: AtomicBool,
    epoch: Instant,
    /// Redis connections clients hold of their own (limits.max_pinned_connections).
    pinned: Arc<std::sync::atomic::AtomicUsize>,
    /// MONITOR's lines, to every client that monitors.
    pub monitors: super::monitor::Monitors,
    /// Pub/sub where the routes reach no redis.
    pub broker: super::broker::Broker,
}

/// One of limits.max_pinned_connections, given back when dropped.
pub struct PinnedSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for PinnedSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            by_id: Mutex::new(BTreeMap::new()),
            paused_until: AtomicU64::new(0),
            pause_all: AtomicBool::new(false),
            epoch: Instant::now(),
            pinned: Arc::default(),
            monitors: Default::default(),
            broker: Default::default(),
        }
    }
}

impl Clients {
    pub fn register(&self, client: Client) -> Arc<Client> {
        let client = Arc::new(client);
        self.by_id.lock().insert(client.id, client.clone());
        client
    }

    pub fn remove(&self, id: u64) {
        self.by_id.lock().remove(&id);
    }

    /// Every client, by id.
    pub fn list(&self) -> Vec<Arc<Client>> {
        self.by_id.lock().values().cloned().collect()
    }

    /// Ends every client `chosen` picks (taken off the list at once, its
    /// connection closed when its task next wakes); how many.
    pub fn kill(&self, chosen: impl Fn(&Client) -> bool) -> usize {
        let mut by_id = self.by_id.lock();
        let ids: Vec<u64> = by_id.values().filter(|c| chosen(c)).map(|c| c.id).collect();
        for id in &ids {
            if let Some(client) = by_id.remove(id) {
                client.killed.cancel();
            }
        }
        ids.len()
    }

    /// The redis client id of client `id`'s own redis connection, if it
    /// has one.
    pub fn redis_connection_of(&self, id: u64) -> Option<i64> {
        let client = self.by_id.lock().get(&id).cloned()?;
        let redis_id = client.redis_connection.load(Ordering::Relaxed);
        (redis_id >= 0).then_some(redis_id)
    }

    /// A slot for a redis connection of a client's own, if fewer than
    /// `limit` are held.
    pub fn pin_slot(&self, limit: usize) -> Option<PinnedSlot> {
        let taken = self.pinned.fetch_add(1, Ordering::Relaxed);
        let slot = PinnedSlot(self.pinned.clone());
        (taken < limit).then_some(slot)
    }

    /// CLIENT PAUSE: commands (all, or writes only) wait until `until`.
    pub fn pause(&self, until: Duration, all: bool) {
        let until = (self.epoch.elapsed() + until).as_millis() as u64;
        self.pause_all.store(all, Ordering::Relaxed);
        self.paused_until.store(until.max(1), Ordering::Relaxed);
    }

    pub fn unpause(&self) {
        self.paused_until.store(0, Ordering::Relaxed);
    }

    /// How long a command must still wait (`writes`: whether it writes,
    /// asked only during a WRITE pause). One relaxed load when nothing is
    /// paused.
    pub fn pause_left(&self, writes: impl FnOnce() -> bool) -> Option<Duration> {
        let until = self.paused_until.load(Ordering::Relaxed);
        if until == 0 || (!self.pause_all.load(Ordering::Relaxed) && !writes()) {
            return None;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        (until > now).then(|| Duration::from_millis(until - now))
    }
}
