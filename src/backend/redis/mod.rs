//! `redis://[user:password@]host:port[/db]`: a real redis server.
//!
//! Pooled pipelined connections ([`Pool`]), each set up with `HELLO 3` (with
//! AUTH) and SELECT when it opens. Keyway's database n is the server's
//! database `db + n`. RESP clients' commands on a redis route are forwarded
//! as they came ([`RedisBackend::forward`]); memcached clients' requests go
//! through the [`Backend`] operations below.
//!
//! Values written with memcached flags 0 are stored as they are, so redis's
//! own clients and commands see plain strings. Non-zero flags (and a value
//! that happens to start with the marker) are stored as
//! `"\0kwf" + flags (4 bytes, big-endian) + value` ([`encode_value`]).
//!
//! Plain GET/SET/DEL/TTL/EXPIRE map to one redis command each. The other
//! writes (add, replace, cas, append, incr in memcached's or redis's rules,
//! KEEPTTL) read the item, decide exactly as the memory and SQL backends do
//! ([`plan_store`], [`numeric::apply`]), and write with a Lua script that
//! applies the change only if the item is still what was read, retrying
//! otherwise: atomic against every other client of the server. CAS ids are a
//! hash of the stored bytes: storing the same bytes again keeps the id.

pub mod cluster;
mod owners;
mod sentinel;

use std::net::ToSocketAddrs;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::resp::{parse_backend_reply, BackendReply as Reply};
use sha1::{Digest, Sha1};

use keyway_protocol::resp::Version;

use super::pipeline::{Expect, Framer, Pool, PoolOptions, Resp2, Resp3};
use super::{numeric, Backend, BackendError, Result, SCAN_CURSOR_MASK};
use crate::config::{BackendConfig, RedisUrl};
use crate::op::{
    now_ms, plan_store, Arith, ArithOutcome, Db, ExpireCondition, Expiry, ExpiryUpdate, Item,
    ScanPage, Store, StoreMode, StoreOutcome, StorePlan, StoreStatus, Ttl,
};

const DEFAULT_CONNECTIONS: usize = 4;
const MAX_REPLY: usize = 512 * 1024 * 1024 + 1024;
/// Read-decide-write attempts before giving up on a key others keep changing.
const ATTEMPTS: usize = 64;
/// Marks a stored value that carries memcached flags.
pub const FLAGS_MARKER: &[u8] = b"\0kwf";
const MARKER: &[u8] = FLAGS_MARKER;

/// Applies a decided change only if the key still holds what was read.
/// KEYS[1]; ARGV: expect ("1" present / "0" absent), old value, old
/// PEXPIRETIME, action ("set" / "del"), new value, new PXAT ("0": none).
const WRITE_IF_UNCHANGED: &str = r#"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] or redis.call('PEXPIRETIME', KEYS[1]) ~= tonumber(ARGV[3]) then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == 'del' then
  redis.call('DEL', KEYS[1])
elseif ARGV[6] == '0' then
  redis.call('SET', KEYS[1], ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[5], 'PXAT', ARGV[6])
end
return 1
"#;

pub struct RedisBackend {
    servers: Servers,
    base_db: u8,
    script_sha: String,
}

/// One redis (found by address, name or sentinels), or a Redis Cluster.
enum Servers {
    One {
        /// RESP3 connections: Keyway's own operations and RESP3 clients' commands.
        pool: Arc<Pool<Resp3>>,
        /// RESP2 connections for RESP2 clients' commands, so they get redis's
        /// RESP2 reply shapes (opened only if such a client comes).
        pool2: Arc<Pool<Resp2>>,
    },
    Cluster(Arc<cluster::Cluster>),
}

/// The hash slot of a command sent to every node of a cluster.
const EVERY_NODE: u16 = u16::MAX;

/// Whole RESP commands on their way to a redis route, each with the hash
/// slot of its keys (used by a Redis Cluster; 0 otherwise).
#[derive(Default)]
pub struct Batch {
    bytes: BytesMut,
    ends: Vec<usize>,
    slots: Vec<u16>,
}

impl Batch {
    /// Adds one command as the client framed it.
    pub fn push_raw(&mut self, raw: &[u8], slot: u16) {
        self.bytes.extend_from_slice(raw);
        self.close(slot);
    }

    /// Adds a keyless command for every node (SCRIPT LOAD): the reply is the
    /// first node's error, else the last node's reply.
    pub fn push_for_every_node(&mut self, args: &[Bytes]) {
        self.push_args(args, EVERY_NODE);
    }

    /// Adds one command from its arguments.
    pub fn push_args(&mut self, args: &[Bytes], slot: u16) {
        let args: Vec<&[u8]> = args.iter().map(|arg| &arg[..]).collect();
        command(&mut self.bytes, &args);
        self.close(slot);
    }

    fn close(&mut self, slot: u16) {
        self.ends.push(self.bytes.len());
        self.slots.push(slot);
    }

    /// Commands in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empties the batch, returning what it held.
    pub fn take(&mut self) -> Batch {
        Batch {
            bytes: self.bytes.split(),
            ends: std::mem::take(&mut self.ends),
            slots: std::mem::take(&mut self.slots),
        }
    }
}

/// Appends one command as a RESP array of bulk strings.
fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for arg in args {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

/// The stored form of a value with memcached `flags`.
pub fn encode_value(value: &[u8], flags: u32) -> Bytes {
    if flags == 0 && !value.starts_with(MARKER) {
        return Bytes::copy_from_slice(value);
    }
    let mut out = BytesMut::with_capacity(MARKER.len() + 4 + value.len());
    out.put_slice(MARKER);
    out.put_u32(flags);
    out.put_slice(value);
    out.freeze()
}

/// A reply to a RESP client for a stored value: the value without any flags header.
pub fn client_value(stored: &Bytes) -> Bytes {
    decode_value(stored).0
}

/// The value and flags a stored form holds.
pub fn decode_value(stored: &Bytes) -> (Bytes, u32) {
    if stored.len() >= MARKER.len() + 4 && stored.starts_with(MARKER) {
        let flags = u32::from_be_bytes(stored[4..8].try_into().expect("4 bytes"));
        (stored.slice(8..), flags)
    } else {
        (stored.clone(), 0)
    }
}

/// A CAS id for stored bytes: FNV-1a, stable across processes and restarts.
fn cas_of(stored: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in stored {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash & (u64::MAX >> 1)
}

fn item_of(stored: &Bytes, expiry: Expiry) -> Item {
    let (value, flags) = decode_value(stored);
    Item {
        value,
        flags,
        cas: cas_of(stored),
        expiry,
    }
}

fn unexpected(reply: &Reply) -> BackendError {
    match reply {
        Reply::Error(why) => unavailable(why),
        other => unavailable(&format!("unexpected reply {other:?}")),
    }
}

fn unavailable(message: &str) -> BackendError {
    BackendError::Unavailable {
        backend: "redis".into(),
        message: message.into(),
    }
}

/// A reply's bytes, parsed (as RESP3: Keyway's own commands use RESP3).
fn parse_reply(raw: &Bytes) -> Result<Reply> {
    parse_backend_reply(raw, Version::Resp3).map_err(|e| unavailable(&e.to_string()))
}

/// A Redis Cluster has database 0 only (redis refuses SELECT in cluster mode).
fn only_database_0(db: Db) -> Result<()> {
    if db == 0 {
        return Ok(());
    }
    Err(BackendError::Unsupported(format!(
        "database {db} is not served on a redis-cluster route: a Redis Cluster has only \
         database 0 (SELECT 0, or route this prefix elsewhere)"
    )))
}

fn integer(reply: &Reply) -> Result<i64> {
    match reply {
        Reply::Integer(n) => Ok(*n),
        other => Err(unexpected(other)),
    }
}

fn bulk(reply: Reply) -> Result<Option<Bytes>> {
    match reply {
        Reply::Bulk(bytes) => Ok(Some(bytes)),
        Reply::Null => Ok(None),
        other => Err(unexpected(&other)),
    }
}

/// PEXPIRETIME's answer as an expiry (-1: none).
fn expiry_of(pexpiretime: i64) -> Expiry {
    if pexpiretime < 0 {
        Expiry::Never
    } else {
        Expiry::At(pexpiretime as u64)
    }
}

/// The decimal text of `n`.
fn text(n: impl itoa::Integer) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// What a read-decide-write does to the key.
enum Change {
    Keep,
    /// Store these bytes (a delete when the expiry is past).
    Set(Bytes, Expiry),
}

impl RedisBackend {
    pub fn new(url: &RedisUrl, config: &BackendConfig) -> std::result::Result<Self, String> {
        let locator = url.sentinel.as_ref().map(|target| {
            Arc::new(sentinel::SentinelLocator {
                sentinels: target.servers.clone(),
                master: target.master.clone(),
                user: url.user.clone(),
                password: url.password.clone(),
                timeout: config.connect_timeout() + config.request_timeout(),
                fenced_until: std::sync::atomic::AtomicU64::new(0),
            })
        });
        let addr = match &locator {
            // Unknown until a sentinel answers (before the first connection).
            Some(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            None => (url.host.as_str(), url.port)
                .to_socket_addrs()
                .map_err(|e| format!("{}:{}: {e}", url.host, url.port))?
                .next()
                .ok_or_else(|| format!("{}:{}: no address", url.host, url.port))?,
        };
        let select = (url.db != 0).then(|| text(url.db));
        let handshake = |version: Version| {
            let mut request = BytesMut::new();
            let mut replies = 0;
            let user = url.user.as_deref().unwrap_or("default").as_bytes();
            match (version, &url.password) {
                (Version::Resp3, Some(password)) => command(
                    &mut request,
                    &[b"HELLO", b"3", b"AUTH", user, password.as_bytes()],
                ),
                (Version::Resp3, None) => command(&mut request, &[b"HELLO", b"3"]),
                (Version::Resp2, Some(password)) => {
                    command(&mut request, &[b"AUTH", user, password.as_bytes()])
                }
                (Version::Resp2, None) => {}
            }
            if !request.is_empty() {
                replies += 1;
            }
            if let Some(db) = &select {
                command(&mut request, &[b"SELECT", db]);
                replies += 1;
            }
            (replies > 0).then(|| (request.freeze(), replies))
        };
        let tls = config
            .uses_tls()
            .then(|| config.tls_connector(&url.host))
            .transpose()?;
        let options = |version| PoolOptions {
            connections: config.connections.unwrap_or(DEFAULT_CONNECTIONS),
            connect_timeout: config.connect_timeout(),
            request_timeout: config.request_timeout(),
            max_value: MAX_REPLY,
            handshake: handshake(version),
            tls: tls.clone(),
            follow: Some(url.host.clone()),
            locate: locator
                .clone()
                .map(|locator| locator as Arc<dyn super::pipeline::Locate>),
        };
        let script_sha = hex::encode(Sha1::digest(WRITE_IF_UNCHANGED.as_bytes()));
        if let Some(seeds) = &url.cluster {
            if tls.is_some() {
                return Err(
                    "TLS to a Redis Cluster is not built yet; drop the tls settings \
                            or reach the cluster over a private network"
                        .into(),
                );
            }
            let (connections, connect_timeout, request_timeout) = (
                config.connections.unwrap_or(DEFAULT_CONNECTIONS),
                config.connect_timeout(),
                config.request_timeout(),
            );
            let (handshake3, handshake2) = (handshake(Version::Resp3), handshake(Version::Resp2));
            let node_options = move |version| PoolOptions {
                connections,
                connect_timeout,
                request_timeout,
                max_value: MAX_REPLY,
                handshake: match version {
                    Version::Resp3 => handshake3.clone(),
                    Version::Resp2 => handshake2.clone(),
                },
                tls: None,
                follow: None,
                locate: None,
            };
            let make_node = move |addr| cluster::Node {
                addr,
                pool: Pool::new(addr, node_options(Version::Resp3)),
                pool2: Pool::new(addr, node_options(Version::Resp2)),
            };
            return Ok(Self {
                servers: Servers::Cluster(Arc::new(cluster::Cluster::new(
                    seeds.clone(),
                    config.request_timeout(),
                    make_node,
                ))),
                base_db: 0,
                script_sha,
            });
        }
        let pool = Arc::new(Pool::new(addr, options(Version::Resp3)));
        let pool2 = Arc::new(Pool::new(addr, options(Version::Resp2)));
        if let Some(locator) = &locator {
            locator.watch(vec![Arc::downgrade(&pool)]);
            locator.watch(vec![Arc::downgrade(&pool2)]);
        }
        super::pipeline::follow_names(vec![Arc::downgrade(&pool)], config.resolve_interval());
        super::pipeline::follow_names(vec![Arc::downgrade(&pool2)], config.resolve_interval());
        Ok(Self {
            servers: Servers::One { pool, pool2 },
            base_db: url.db,
            script_sha,
        })
    }

    /// Whether this is a Redis Cluster (commands go to the node serving
    /// their keys' hash slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.servers, Servers::Cluster(_))
    }

    /// What a Redis Cluster backend has followed (redirections, slot maps).
    pub fn cluster_figures(&self) -> Option<&cluster::Figures> {
        match &self.servers {
            Servers::Cluster(cluster) => Some(&cluster.figures),
            Servers::One { .. } => None,
        }
    }

    /// Runs the commands `build` appends (`count` of them, all on `key`:
    /// on a cluster they go to the node serving its hash slot), in Keyway
    /// database `db`, over RESP3, and returns one reply per command.
    async fn run(
        &self,
        db: Db,
        key: &[u8],
        count: usize,
        build: impl FnOnce(&mut BytesMut),
    ) -> Result<Vec<Reply>> {
        self.run_raw(Version::Resp3, db, key, count, build)
            .await?
            .iter()
            .map(parse_reply)
            .collect()
    }

    /// Like `run`, over `version`, returning the replies' raw bytes.
    async fn run_raw(
        &self,
        version: Version,
        db: Db,
        key: &[u8],
        count: usize,
        build: impl FnOnce(&mut BytesMut),
    ) -> Result<Vec<Bytes>> {
        match &self.servers {
            Servers::One { pool, .. } if version == Version::Resp3 => {
                self.run_on(pool, db, count, build).await
            }
            Servers::One { pool2, .. } => self.run_on(pool2, db, count, build).await,
            Servers::Cluster(cluster) => {
                only_database_0(db)?;
                let mut request = BytesMut::new();
                build(&mut request);
                let unit = cluster::Unit::new(cluster::key_slot(key), request.freeze(), count);
                cluster.call(version, &[unit]).await.remove(0)
            }
        }
    }

    /// Runs `build(key)` for each of `keys` (one command each) and returns
    /// one reply per key: pipelined on one connection, or on a cluster,
    /// grouped by the node serving each key.
    async fn run_each(
        &self,
        db: Db,
        keys: &[Bytes],
        build: impl Fn(&mut BytesMut, &[u8]),
    ) -> Result<Vec<Reply>> {
        let Servers::Cluster(cluster) = &self.servers else {
            return self
                .run(db, b"", keys.len(), |r| {
                    for key in keys {
                        build(r, key);
                    }
                })
                .await;
        };
        only_database_0(db)?;
        let units: Vec<cluster::Unit> = keys
            .iter()
            .map(|key| {
                let mut request = BytesMut::new();
                build(&mut request, key);
                cluster::Unit::new(cluster::key_slot(key), request.freeze(), 1)
            })
            .collect();
        let mut replies = Vec::with_capacity(keys.len());
        for result in cluster.call(Version::Resp3, &units).await {
            replies.push(parse_reply(&result?.remove(0))?);
        }
        Ok(replies)
    }

    /// Runs `build` on one connection of `pool` (one redis).
    async fn run_on<F: Framer<Frame = Bytes>>(
        &self,
        pool: &Pool<F>,
        db: Db,
        count: usize,
        build: impl FnOnce(&mut BytesMut),
    ) -> Result<Vec<Bytes>> {
        let mut request = BytesMut::new();
        let target = u16::from(self.base_db) + u16::from(db);
        let switch = db != 0;
        if switch {
            if target >= 16 {
                return Err(BackendError::Unsupported(format!(
                    "database {db} maps to redis database {target}, past the 16 a redis has"
                )));
            }
            command(&mut request, &[b"SELECT", &text(target)]);
        }
        build(&mut request);
        if switch {
            command(&mut request, &[b"SELECT", &text(self.base_db)]);
        }
        let total = count + if switch { 2 } else { 0 };
        let mut replies = pool
            .call(request.freeze(), Expect::Count(total))
            .await
            .map_err(|e| unavailable(&e.to_string()))?;
        // A master demoted by a failover: connect anew (asking the
        // sentinels, for redis-sentinel://) from the next request on.
        if replies.iter().any(|reply| reply.starts_with(b"-READONLY")) {
            pool.forget_connections();
        }
        if switch {
            replies.pop();
            let selected = replies.remove(0);
            if let Some(why) = F::failure(&selected) {
                return Err(unavailable(&why));
            }
        }
        Ok(replies)
    }

    /// Sends `batch` (whole RESP commands, as a client speaking `version`
    /// sent them; a MULTI ... EXEC when `transaction`) in Keyway database
    /// `db` and returns their replies as redis sent them, in order: on one
    /// connection of that version, or on a cluster, each command to the
    /// node serving its hash slot (a transaction as a whole). On a cluster,
    /// a command that cannot be delivered gets an error reply of its own.
    pub async fn forward(
        &self,
        version: Version,
        db: Db,
        batch: Batch,
        transaction: bool,
    ) -> Result<Vec<Bytes>> {
        let count = batch.len();
        let Servers::Cluster(cluster) = &self.servers else {
            return self
                .run_raw(version, db, b"", count, |r| r.put_slice(&batch.bytes))
                .await;
        };
        only_database_0(db)?;
        if batch.slots == [EVERY_NODE] {
            let mut last = Vec::new();
            for node in cluster.primaries().await? {
                let reply = node
                    .pool
                    .call(batch.bytes.clone().freeze(), Expect::One)
                    .await
                    .map_err(|e| unavailable(&e.to_string()))?;
                if reply[0].starts_with(b"-") {
                    return Ok(reply);
                }
                last = reply;
            }
            return Ok(last);
        }
        let bytes = batch.bytes.freeze();
        if !transaction {
            return Ok(cluster
                .forward_split(version, &bytes, &batch.ends, &batch.slots)
                .await);
        }
        let unit = cluster::Unit {
            slot: batch.slots.first().copied().unwrap_or(0),
            request: bytes,
            commands: count,
            transaction: true,
        };
        Ok(
            match cluster
                .call(version, std::slice::from_ref(&unit))
                .await
                .remove(0)
            {
                Ok(replies) => replies,
                Err(error) => vec![cluster::error_frame(&error); count],
            },
        )
    }

    /// `PING` on the RESP3 pool (every primary of a cluster).
    pub async fn probe(&self) -> Result<()> {
        if let Servers::Cluster(cluster) = &self.servers {
            for node in cluster.primaries().await? {
                self.on_node(&node, &[b"PING"]).await?;
            }
            return Ok(());
        }
        match self.one(0, b"", &[b"PING"]).await? {
            Reply::Error(why) => Err(unavailable(&why)),
            _ => Ok(()),
        }
    }

    /// Open connections and the most kept, over both pools (RESP3 and
    /// RESP2) of every server.
    pub fn connections(&self) -> (usize, usize) {
        match &self.servers {
            Servers::One { pool, pool2 } => (
                pool.open_connections() + pool2.open_connections(),
                pool.max_connections() + pool2.max_connections(),
            ),
            Servers::Cluster(cluster) => {
                cluster
                    .known_nodes()
                    .iter()
                    .fold((0, 0), |(open, max), node| {
                        (
                            open + node.pool.open_connections() + node.pool2.open_connections(),
                            max + node.pool.max_connections() + node.pool2.max_connections(),
                        )
                    })
            }
        }
    }

    /// One command on `key` (on a cluster, sent to the node serving it).
    async fn one(&self, db: Db, key: &[u8], args: &[&[u8]]) -> Result<Reply> {
        Ok(self.run(db, key, 1, |r| command(r, args)).await?.remove(0))
    }

    /// One command on one node of a cluster; an error reply is an error.
    async fn on_node(&self, node: &cluster::Node, args: &[&[u8]]) -> Result<Reply> {
        let mut request = BytesMut::new();
        command(&mut request, args);
        let raw = node
            .pool
            .call(request.freeze(), Expect::One)
            .await
            .map_err(|e| unavailable(&e.to_string()))?;
        match parse_reply(&raw[0])? {
            Reply::Error(why) => Err(unavailable(&format!("{}: {why}", node.addr))),
            reply => Ok(reply),
        }
    }

    /// The live item under `key`, with its exact expiry.
    async fn read(&self, db: Db, key: &[u8]) -> Result<Option<(Bytes, i64)>> {
        let mut replies = self
            .run(db, key, 2, |r| {
                command(r, &[b"GET", key]);
                command(r, &[b"PEXPIRETIME", key]);
            })
            .await?;
        let pexpiretime = integer(&replies[1])?;
        Ok(bulk(replies.remove(0))?.map(|stored| (stored, pexpiretime)))
    }

    /// Reads `key`, lets `decide` choose a change and an answer, and applies
    /// the change only if the key is unchanged since the read; retries if not.
    async fn read_decide_write<T>(
        &self,
        db: Db,
        key: &Bytes,
        mut decide: impl FnMut(Option<Item>) -> Result<(Change, T)>,
    ) -> Result<T> {
        for _ in 0..ATTEMPTS {
            let current = self.read(db, key).await?;
            let item = current
                .as_ref()
                .map(|(stored, pexpiretime)| item_of(stored, expiry_of(*pexpiretime)));
            let (change, answer) = decide(item)?;
            let (action, value, pxat): (&[u8], Bytes, Vec<u8>) = match change {
                Change::Keep => return Ok(answer),
                Change::Set(_, Expiry::At(at)) if at <= now_ms() => {
                    (b"del", Bytes::new(), b"0".to_vec())
                }
                Change::Set(value, Expiry::Never) => (b"set", value, b"0".to_vec()),
                Change::Set(value, Expiry::At(at)) => (b"set", value, text(at)),
            };
            let (expect, old, old_expiry): (&[u8], Bytes, Vec<u8>) = match &current {
                Some((stored, pexpiretime)) => (b"1", stored.clone(), text(*pexpiretime)),
                None => (b"0", Bytes::new(), b"-2".to_vec()),
            };
            let args: [&[u8]; 9] = [
                self.script_sha.as_bytes(),
                b"1",
                key,
                expect,
                &old,
                &old_expiry,
                action,
                &value,
                &pxat,
            ];
            if integer(&self.eval(db, key, &args).await?)? == 1 {
                return Ok(answer);
            }
        }
        Err(unavailable(&format!(
            "key changed under {ATTEMPTS} attempts to update it; try again"
        )))
    }

    /// EVALSHA of the write script, loading it with EVAL on a server that
    /// does not have it yet.
    async fn eval(&self, db: Db, key: &[u8], args: &[&[u8]]) -> Result<Reply> {
        let mut evalsha: Vec<&[u8]> = vec![b"EVALSHA"];
        evalsha.extend_from_slice(args);
        match self.one(db, key, &evalsha).await? {
            Reply::Error(why) if why.starts_with("NOSCRIPT") => {
                let mut eval: Vec<&[u8]> = vec![b"EVAL", WRITE_IF_UNCHANGED.as_bytes()];
                eval.extend_from_slice(&args[1..]);
                self.one(db, key, &eval).await
            }
            reply => Ok(reply),
        }
    }

    /// Appends a SET of `stored` expiring at `expiry` (a DEL if that is past).
    fn set_command(request: &mut BytesMut, key: &[u8], stored: &[u8], expiry: Expiry) {
        match expiry {
            Expiry::Never => command(request, &[b"SET", key, stored]),
            Expiry::At(at) if at <= now_ms() => command(request, &[b"DEL", key]),
            Expiry::At(at) => command(request, &[b"SET", key, stored, b"PXAT", &text(at)]),
        }
    }
}

impl RedisBackend {
    /// The write itself ([`Backend::store`] adds the session index).
    async fn store_item(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        if store.mode == StoreMode::Set && !store.return_old {
            if let ExpiryUpdate::Set(expiry) = store.expiry {
                let stored = encode_value(&store.value, store.flags);
                let reply = self
                    .run(db, &store.key, 1, |r| {
                        Self::set_command(r, &store.key, &stored, expiry)
                    })
                    .await?
                    .remove(0);
                return match reply {
                    Reply::Simple(_) | Reply::Integer(_) => Ok(StoreOutcome {
                        status: StoreStatus::Stored,
                        old: None,
                        len: store.value.len(),
                    }),
                    other => Err(unexpected(&other)),
                };
            }
        }
        self.read_decide_write(db, &store.key, |current| {
            Ok(match plan_store(&store, current.as_ref(), Bytes::clone) {
                StorePlan::Refuse(status) => (
                    Change::Keep,
                    StoreOutcome::refused_showing(status, &store, current.clone()),
                ),
                StorePlan::Write {
                    value,
                    flags,
                    expiry,
                } => (
                    Change::Set(encode_value(&value, flags), expiry),
                    StoreOutcome {
                        status: StoreStatus::Stored,
                        old: current.filter(|_| store.return_old),
                        len: value.len(),
                    },
                ),
            })
        })
        .await
    }
}

impl Backend for RedisBackend {
    /// One MGET. Items report no expiry here (ask `ttl`).
    async fn get(&self, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        if self.is_cluster() {
            return self
                .run_each(db, keys, |r, key| command(r, &[b"GET", key]))
                .await?
                .into_iter()
                .map(|value| Ok(bulk(value)?.map(|stored| item_of(&stored, Expiry::Never))))
                .collect();
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend(keys.iter().map(|k| &k[..]));
        match self.one(db, b"", &args).await? {
            Reply::Array(values) if values.len() == keys.len() => values
                .into_iter()
                .map(|value| Ok(bulk(value)?.map(|stored| item_of(&stored, Expiry::Never))))
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    async fn get_and_touch(
        &self,
        db: Db,
        keys: &[Bytes],
        expiry: Expiry,
    ) -> Result<Vec<Option<Item>>> {
        let at = match expiry {
            Expiry::At(at) => text(at),
            Expiry::Never => Vec::new(),
        };
        let replies = self
            .run_each(db, keys, |r, key| match expiry {
                Expiry::Never => command(r, &[b"GETEX", key, b"PERSIST"]),
                Expiry::At(_) => command(r, &[b"GETEX", key, b"PXAT", &at]),
            })
            .await?;
        replies
            .into_iter()
            .map(|reply| Ok(bulk(reply)?.map(|stored| item_of(&stored, expiry))))
            .collect()
    }

    async fn get_and_delete(&self, db: Db, key: &Bytes) -> Result<Option<Item>> {
        let reply = self.one(db, key, &[b"GETDEL", key]).await?;
        Ok(bulk(reply)?.map(|stored| item_of(&stored, Expiry::Never)))
    }

    async fn store(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        let session = keyway_protocol::django::may_be_session_key(&store.key).then(|| {
            (
                store.key.clone(),
                store.value.clone(),
                store.flags,
                store.expiry,
            )
        });
        let outcome = self.store_item(db, store).await?;
        if let Some((key, value, flags, expiry)) = session {
            if outcome.status == StoreStatus::Stored {
                self.index_session(db, &key, &value, flags, expiry).await?;
            }
        }
        Ok(outcome)
    }

    async fn store_all_if_absent(&self, db: Db, pairs: Vec<(Bytes, Bytes)>) -> Result<bool> {
        let stored: Vec<Bytes> = pairs.iter().map(|(_, v)| encode_value(v, 0)).collect();
        let mut args: Vec<&[u8]> = vec![b"MSETNX"];
        for ((key, _), value) in pairs.iter().zip(&stored) {
            args.push(key);
            args.push(value);
        }
        // On a cluster, MSETNX needs every key in one hash slot (redis's
        // CROSSSLOT error otherwise): nothing else would keep it all-or-nothing.
        let first = pairs.first().map_or(&b""[..], |(key, _)| &key[..]);
        if self.is_cluster()
            && pairs
                .iter()
                .any(|(key, _)| cluster::key_slot(key) != cluster::key_slot(first))
        {
            return Err(BackendError::Unsupported(
                "CROSSSLOT Keys in request don't hash to the same slot (MSETNX on a \
                 redis-cluster route is all-or-nothing only within one hash slot: give \
                 the keys one {hash tag})"
                    .into(),
            ));
        }
        Ok(integer(&self.one(db, first, &args).await?)? == 1)
    }

    async fn delete(&self, db: Db, keys: &[Bytes]) -> Result<Vec<bool>> {
        let replies = self
            .run_each(db, keys, |r, key| command(r, &[b"DEL", key]))
            .await?;
        replies.iter().map(|r| Ok(integer(r)? == 1)).collect()
    }

    async fn arith(&self, db: Db, key: &Bytes, arith: Arith) -> Result<ArithOutcome> {
        self.read_decide_write(db, key, |current| {
            let Some((value, outcome)) =
                numeric::apply(arith, current.as_ref().map(|c| &c.value[..]))?
            else {
                return Ok((Change::Keep, ArithOutcome::NotFound));
            };
            let (flags, expiry) = current.map_or((0, Expiry::Never), |c| (c.flags, c.expiry));
            Ok((Change::Set(encode_value(&value, flags), expiry), outcome))
        })
        .await
    }

    async fn expire(
        &self,
        db: Db,
        key: &Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Result<bool> {
        let at = match expiry {
            Expiry::At(at) => text(at),
            Expiry::Never => Vec::new(),
        };
        let option: &[u8] = match condition {
            ExpireCondition::Always => b"",
            ExpireCondition::IfPersistent => b"NX",
            ExpireCondition::IfVolatile => b"XX",
            ExpireCondition::IfLater => b"GT",
            ExpireCondition::IfEarlier => b"LT",
            ExpireCondition::IfVolatileAndEarlier => b"XX",
        };
        match (expiry, condition) {
            // "No expiry" is later than any: only PERSIST-like conditions can hold.
            (Expiry::Never, ExpireCondition::Always) => {
                let replies = self
                    .run(db, key, 2, |r| {
                        command(r, &[b"PERSIST", key]);
                        command(r, &[b"EXISTS", key]);
                    })
                    .await?;
                Ok(integer(&replies[1])? == 1)
            }
            (Expiry::Never, ExpireCondition::IfVolatile | ExpireCondition::IfLater) => {
                Ok(integer(&self.one(db, key, &[b"PERSIST", key]).await?)? == 1)
            }
            (Expiry::Never, _) => Ok(false),
            (Expiry::At(_), ExpireCondition::IfVolatileAndEarlier) => Ok(integer(
                &self
                    .one(db, key, &[b"PEXPIREAT", key, &at, b"XX", b"LT"])
                    .await?,
            )? == 1),
            (Expiry::At(_), ExpireCondition::Always) => {
                Ok(integer(&self.one(db, key, &[b"PEXPIREAT", key, &at]).await?)? == 1)
            }
            (Expiry::At(_), _) => {
                Ok(integer(&self.one(db, key, &[b"PEXPIREAT", key, &at, option]).await?)? == 1)
            }
        }
    }

    async fn ttl(&self, db: Db, key: &Bytes) -> Result<Ttl> {
        Ok(match integer(&self.one(db, key, &[b"PTTL", key]).await?)? {
            -2 => Ttl::Missing,
            -1 => Ttl::Persistent,
            ms => Ttl::Millis(ms.max(0) as u64),
        })
    }

    /// On a cluster, each primary's keys in turn: the cursor clients see
    /// carries the primary's place (bits 48-55, the primaries in address
    /// order) and that primary's own SCAN cursor (bits 0-47).
    async fn scan(
        &self,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let Servers::Cluster(cluster) = &self.servers else {
            return self.scan_page(None, db, cursor, pattern, count).await;
        };
        only_database_0(db)?;
        let primaries = cluster.primaries().await?;
        let cursor = cursor & SCAN_CURSOR_MASK;
        let mut index = (cursor >> NODE_CURSOR_BITS) as usize;
        let mut node_cursor = cursor & NODE_CURSOR_MASK;
        while let Some(node) = primaries.get(index) {
            let page = self
                .scan_page(Some(node), db, node_cursor, pattern, count)
                .await?;
            if page.cursor > NODE_CURSOR_MASK {
                return Err(unavailable(&format!(
                    "{}: SCAN returned a cursor Keyway cannot carry across a cluster",
                    node.addr
                )));
            }
            if page.cursor != 0 {
                let cursor = ((index as u64) << NODE_CURSOR_BITS) | page.cursor;
                return Ok(ScanPage { cursor, ..page });
            }
            index += 1;
            node_cursor = 0;
            if index == primaries.len() || !page.keys.is_empty() {
                let cursor = if index == primaries.len() {
                    0
                } else {
                    (index as u64) << NODE_CURSOR_BITS
                };
                return Ok(ScanPage { cursor, ..page });
            }
        }
        Ok(ScanPage {
            cursor: 0,
            keys: Vec::new(),
        })
    }

    async fn len(&self, db: Db) -> Result<usize> {
        let Servers::Cluster(cluster) = &self.servers else {
            return Ok(integer(&self.one(db, b"", &[b"DBSIZE"]).await?)?.max(0) as usize);
        };
        only_database_0(db)?;
        let mut total = 0;
        for node in cluster.primaries().await? {
            total += integer(&self.on_node(&node, &[b"DBSIZE"]).await?)?.max(0) as usize;
        }
        Ok(total)
    }

    /// FLUSHDB of the mapped database, or of each mapped one for all
    /// (FLUSHALL only when Keyway's databases are the server's 0-15). On a
    /// cluster, FLUSHALL on every primary.
    async fn flush(&self, db: Option<Db>) -> Result<()> {
        if let Servers::Cluster(cluster) = &self.servers {
            only_database_0(db.unwrap_or(0))?;
            for node in cluster.primaries().await? {
                self.on_node(&node, &[b"FLUSHALL"]).await?;
            }
            return Ok(());
        }
        let dbs: Vec<Db> = match db {
            Some(db) => vec![db],
            None if self.base_db == 0 => {
                return match self.one(0, b"", &[b"FLUSHALL"]).await? {
                    Reply::Simple(_) => Ok(()),
                    other => Err(unexpected(&other)),
                };
            }
            None => (0..16 - self.base_db).collect(),
        };
        for db in dbs {
            match self.one(db, b"", &[b"FLUSHDB"]).await? {
                Reply::Simple(_) => {}
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }
}

/// A cluster SCAN cursor: the primary's place above, its own cursor below.
const NODE_CURSOR_BITS: u32 = 48;
const NODE_CURSOR_MASK: u64 = (1 << NODE_CURSOR_BITS) - 1;

impl RedisBackend {
    /// One SCAN page from the one redis, or from `node` of a cluster.
    async fn scan_page(
        &self,
        node: Option<&cluster::Node>,
        db: Db,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
    ) -> Result<ScanPage> {
        let cursor = text(cursor & SCAN_CURSOR_MASK);
        let count = text(count.max(1));
        let mut args: Vec<&[u8]> = vec![b"SCAN", &cursor, b"COUNT", &count];
        if let Some(pattern) = pattern {
            args.extend([b"MATCH".as_slice(), pattern]);
        }
        let reply = match node {
            Some(node) => self.on_node(node, &args).await?,
            None => self.one(db, b"", &args).await?,
        };
        match reply {
            Reply::Array(mut parts) if parts.len() == 2 => {
                let keys = match parts.pop() {
                    Some(Reply::Array(keys)) => keys
                        .into_iter()
                        .map(|k| bulk(k)?.ok_or_else(|| unavailable("SCAN returned a null key")))
                        .collect::<Result<Vec<_>>>()?,
                    other => return Err(unavailable(&format!("SCAN returned {other:?}"))),
                };
                let cursor = match parts.pop() {
                    Some(Reply::Bulk(cursor)) => std::str::from_utf8(&cursor)
                        .ok()
                        .and_then(|c| c.parse::<u64>().ok())
                        .filter(|c| *c <= SCAN_CURSOR_MASK)
                        .ok_or_else(|| unavailable("SCAN returned a cursor Keyway cannot carry"))?,
                    other => return Err(unavailable(&format!("SCAN returned {other:?}"))),
                };
                Ok(ScanPage { cursor, keys })
            }
            other => Err(unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_flags() {
        for (value, flags) in [
            (&b"plain"[..], 0),
            (b"", 0),
            (b"x", 7),
            (b"\0kwf trick", 0),
            (b"\0kw", 0),
        ] {
            let stored = encode_value(value, flags);
            assert_eq!(
                decode_value(&stored),
                (Bytes::copy_from_slice(value), flags)
            );
        }
        assert_eq!(&encode_value(b"plain", 0)[..], b"plain");
    }
}
