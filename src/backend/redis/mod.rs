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

mod batch;
pub mod cluster;
mod connect;
mod operations;
mod owners;
mod pinned;
mod sentinel;
mod values;

pub use batch::Batch;
use batch::{command, EVERY_NODE};
pub use pinned::Pinned;
use values::item_of;
pub use values::{client_value, decode_value, encode_value};

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::resp::{parse_backend_reply, BackendReply as Reply};

use keyway_protocol::resp::Version;

use super::pipeline::{Expect, Framer, Pool, Resp2, Resp3};
use super::{BackendError, Result};
use crate::op::{now_ms, Db, Expiry, Item};

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
            let reply = self.eval(db, key, WRITE_IF_UNCHANGED.as_bytes(), &args);
            if integer(&reply.await?)? == 1 {
                return Ok(answer);
            }
        }
        Err(unavailable(&format!(
            "key changed under {ATTEMPTS} attempts to update it; try again"
        )))
    }

    /// EVALSHA of the script `body` (`args[0]` is its SHA1), loading it
    /// with EVAL on a server that does not have it yet.
    async fn eval(&self, db: Db, key: &[u8], body: &[u8], args: &[&[u8]]) -> Result<Reply> {
        let mut evalsha: Vec<&[u8]> = vec![b"EVALSHA"];
        evalsha.extend_from_slice(args);
        match self.one(db, key, &evalsha).await? {
            Reply::Error(why) if why.starts_with("NOSCRIPT") => {
                let mut eval: Vec<&[u8]> = vec![b"EVAL", body];
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
            let stored = encode_value(&Bytes::copy_from_slice(value), flags);
            assert_eq!(
                decode_value(&stored),
                (Bytes::copy_from_slice(value), flags)
            );
        }
        assert_eq!(
            &encode_value(&Bytes::from_static(b"plain"), 0)[..],
            b"plain"
        );
    }
}
