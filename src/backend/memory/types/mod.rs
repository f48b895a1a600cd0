//! redis's collections on the memory store: hashes, lists, sets and sorted
//! sets, with redis 7.0's commands, replies and errors (`WRONGTYPE`...).
//!
//! A command runs whole under the locks of the shards its keys live in
//! (taken in shard order, so two commands never wait for each other), which
//! makes each one atomic as in redis. A collection is taken out of its
//! shard, changed and put back; an empty one is not put back (redis deletes
//! an emptied key). Collections count their own bytes as they change, so a
//! shard weighs them in constant time, and they are evicted like strings.

mod args;
mod bits;
mod collections;
mod hashes;
mod keys;
mod lists;
mod sets;
mod sort;
mod sorted_sets;

use bytes::Bytes;
use keyway_protocol::resp::Reply;
use parking_lot::MutexGuard;

use super::shard::{KeyRef, Shard, Stored};
use super::MemoryBackend;
use crate::op::{Db, Expiry, Item};
pub use collections::Collection;
use collections::Kind;

/// A command's reply, or its error reply (so handlers can use `?`).
type Out = Result<Reply, Reply>;

/// The commands of redis's collections the memory store runs (and INCRBYFLOAT).
#[rustfmt::skip]
const NAMES: &[&str] = &[
    // hashes
    "hset", "hsetnx", "hmset", "hget", "hmget", "hgetall", "hkeys", "hvals", "hlen", "hexists",
    "hdel", "hincrby", "hincrbyfloat", "hstrlen", "hrandfield", "hscan",
    // lists
    "lpush", "rpush", "lpushx", "rpushx", "lpop", "rpop", "llen", "lrange", "lindex", "lset",
    "lrem", "ltrim", "linsert", "lpos", "lmove", "rpoplpush", "lmpop",
    // sets
    "sadd", "srem", "smembers", "sismember", "smismember", "scard", "spop", "srandmember", "smove",
    "sdiff", "sdiffstore", "sinter", "sinterstore", "sintercard", "sunion", "sunionstore", "sscan",
    // sorted sets
    "zadd", "zrem", "zscore", "zmscore", "zincrby", "zcard", "zcount", "zlexcount", "zrange",
    "zrangebyscore", "zrevrangebyscore", "zrevrange", "zrangebylex", "zrevrangebylex", "zrank",
    "zrevrank", "zpopmin", "zpopmax", "zrandmember", "zremrangebyrank", "zremrangebyscore",
    "zremrangebylex", "zrangestore", "zunion", "zinter", "zdiff", "zunionstore", "zinterstore",
    "zdiffstore", "zintercard", "zmpop", "zscan",
    // strings: what Keyway's own string commands do not do
    "incrbyfloat", "getbit", "setbit", "bitcount", "bitpos", "bitop",
    // lists, sets and sorted sets ordered
    "sort", "sort_ro",
    // any key: answered here, as the key may hold a collection
    "type", "rename", "renamenx", "copy", "object", "memory", "expiretime", "pexpiretime",
    // where one memory backend holds every key
    "randomkey",
];

/// redis's error for a command of these whose numkeys argument names no
/// keys (zero, negative, or more than follow it): the same on any route,
/// so it is answered before routing.
pub fn numkeys_error(args: &[Bytes]) -> Option<Reply> {
    let name = args[0].to_ascii_lowercase();
    let (at, counts_inputs) = match name.as_slice() {
        b"zunion" | b"zinter" | b"zdiff" => (1, true),
        b"zunionstore" | b"zinterstore" | b"zdiffstore" => (2, true),
        b"lmpop" | b"sintercard" | b"zintercard" | b"zmpop" => (1, false),
        _ => return None,
    };
    let n = match args.get(at).map(|n| args::int(n)) {
        None => return None,
        Some(Err(error)) => return Some(error),
        Some(Ok(n)) => n,
    };
    Some(match (counts_inputs, n < 1) {
        (true, true) => Reply::error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(&name)
        )),
        (true, false) => args::syntax(),
        (false, true) => Reply::error("ERR numkeys should be greater than 0"),
        (false, false) => Reply::error("ERR Number of keys can't be greater than number of args"),
    })
}

/// Whether the memory store runs `name` itself (see [`MemoryBackend::run_typed`]).
pub fn runs(name: &[u8]) -> bool {
    NAMES
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

impl MemoryBackend {
    /// MOVE of `key` (any kind) from database `from` to `to`, where the
    /// key is free: whether it moved. The key's shard is the same in every
    /// database, so one lock covers both.
    pub fn move_key(&self, key: &[u8], from: Db, to: Db) -> Result<bool, Reply> {
        let mut space = Keyspace::lock(self, from, &[key]);
        let Some(stored) = space.get(key)?.cloned() else {
            return Ok(false);
        };
        space.db = to;
        if space.get(key)?.is_some() {
            return Ok(false);
        }
        let moved = Stored {
            item: Item {
                cas: self.new_cas(),
                ..stored.item
            },
            collection: stored.collection,
        };
        space.replace(key, moved)?;
        space.db = from;
        space.remove(key)?;
        Ok(true)
    }

    /// Runs one command of redis's collections (a name [`runs`] accepts),
    /// `keys` being every key it names (the command table's key positions).
    /// `None`: a key command (OBJECT, MEMORY, RENAME, COPY) on a string,
    /// which Keyway's own handler answers.
    pub fn run_typed(&self, db: Db, args: &[Bytes], keys: &[&[u8]], resp3: bool) -> Option<Reply> {
        let name = args[0].to_ascii_lowercase();
        // RANDOMKEY, and a SORT whose patterns name other keys, read any shard.
        let reads_any = match name.as_slice() {
            b"sort" | b"sort_ro" => sort::reads_patterns(args),
            b"randomkey" => true,
            _ => false,
        };
        let mut space = match reads_any {
            true => Keyspace::lock_all(self, db),
            false => Keyspace::lock(self, db, keys),
        };
        let ctx = Ctx { args, resp3 };
        if let Some((key, growth)) = growth(&name, args) {
            match space.has_room(key, growth) {
                Ok(true) => {}
                Ok(false) => return Some(args::out_of_memory()),
                Err(error) => return Some(error),
            }
        }
        let result = match name.as_slice() {
            b"type" | b"rename" | b"renamenx" | b"copy" | b"object" | b"memory" | b"expiretime"
            | b"pexpiretime" => {
                return keys::run(&name, &mut space, &ctx).map(|r| r.unwrap_or_else(|e| e))
            }
            b"incrbyfloat" => keys::incrbyfloat(&mut space, &ctx),
            b"randomkey" => Ok(space.random_key()),
            b"sort" | b"sort_ro" => sort::run(&name, &mut space, &ctx),
            b"getbit" | b"setbit" | b"bitcount" | b"bitpos" | b"bitop" => {
                bits::run(&name, &mut space, &ctx)
            }
            [b'h', ..] => hashes::run(&name, &mut space, &ctx),
            [b's', ..] => sets::run(&name, &mut space, &ctx),
            [b'z', ..] => sorted_sets::run(&name, &mut space, &ctx),
            _ => lists::run(&name, &mut space, &ctx),
        };
        Some(result.unwrap_or_else(|error| error))
    }
}

/// For a command that makes a collection bigger: the key that grows,
/// and at most by how much (its arguments, each with an element's
/// overhead, twice over for sorted sets' two indexes).
fn growth<'a>(name: &[u8], args: &'a [Bytes]) -> Option<(&'a [u8], u64)> {
    let grown = match name {
        b"hset" | b"hmset" | b"hsetnx" | b"hincrby" | b"hincrbyfloat" | b"lpush" | b"rpush"
        | b"lpushx" | b"rpushx" | b"lset" | b"linsert" | b"sadd" | b"zadd" | b"zincrby"
        | b"incrbyfloat" => &args[1],
        b"smove" | b"lmove" | b"rpoplpush" => args.get(2)?,
        _ => return None,
    };
    let bytes: u64 = args[2..].iter().map(|a| a.len() as u64 + 96).sum();
    Some((grown, bytes * 2))
}

/// The command being run: its arguments (the name first) and the
/// client's protocol (RESP3 has maps, sets and doubles).
struct Ctx<'a> {
    args: &'a [Bytes],
    resp3: bool,
}

impl Ctx<'_> {
    fn key(&self) -> &[u8] {
        &self.args[1]
    }

    /// redis's error for a wrong argument count.
    fn arity(&self) -> Reply {
        args::wrong_arity(&self.args[0])
    }
}

/// A collection taken out of the store, with the expiry it keeps.
struct Held<T> {
    value: T,
    expiry: Expiry,
}

impl<T: Kind> Held<T> {
    fn new(value: T) -> Self {
        Self {
            value,
            expiry: Expiry::Never,
        }
    }
}

/// The shards a command's keys live in, locked.
struct Keyspace<'a> {
    backend: &'a MemoryBackend,
    db: Db,
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl<'a> Keyspace<'a> {
    fn lock(backend: &'a MemoryBackend, db: Db, keys: &[&[u8]]) -> Self {
        let mut indexes: Vec<usize> = keys.iter().map(|k| backend.shard_index(k)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let guards = indexes
            .into_iter()
            .map(|i| (i, backend.shards[i].lock()))
            .collect();
        Self {
            backend,
            db,
            guards,
        }
    }

    /// Every shard, locked in order (a command that may read any key).
    fn lock_all(backend: &'a MemoryBackend, db: Db) -> Self {
        let guards = backend
            .shards
            .iter()
            .map(|s| s.lock())
            .enumerate()
            .collect();
        Self {
            backend,
            db,
            guards,
        }
    }

    /// RANDOMKEY: a live key of this database from a random shard (every
    /// shard locked), or nil.
    fn random_key(&mut self) -> Reply {
        use rand::seq::IteratorRandom;
        let (db, now) = (self.db, self.backend.clock.now_ms());
        let mut rng = rand::thread_rng();
        let mut shards: Vec<&mut Shard> = self.guards.iter_mut().map(|(_, g)| &mut **g).collect();
        while !shards.is_empty() {
            let at = rand::Rng::gen_range(&mut rng, 0..shards.len());
            let picked = shards[at]
                .iter()
                .filter(|(key, stored)| key.db == db && !stored.item.expiry.is_expired_at(now))
                .map(|(key, _)| key.key.clone())
                .choose(&mut rng);
            match picked {
                Some(key) => return Reply::Bulk(key),
                None => {
                    shards.swap_remove(at);
                }
            }
        }
        Reply::Null
    }

    /// The locked shard `key` lives in. A key the command table did not
    /// name is an error reply, never a wait (which could deadlock).
    fn shard(&mut self, key: &[u8]) -> Result<&mut Shard, Reply> {
        let index = self.backend.shard_index(key);
        match self.guards.iter_mut().find(|(i, _)| *i == index) {
            Some((_, guard)) => Ok(&mut **guard),
            None => Err(Reply::error(
                "ERR internal: a key this command names was not among its keys",
            )),
        }
    }

    fn key_ref<'k>(&self, key: &'k [u8]) -> KeyRef<'k> {
        KeyRef { db: self.db, key }
    }

    /// What `key` holds now (an expired key is removed: `None`).
    fn get(&mut self, key: &[u8]) -> Result<Option<&Stored>, Reply> {
        let (backend, key_ref) = (self.backend, self.key_ref(key));
        let shard = self.shard(key)?;
        Ok(backend.live_entry(shard, &key_ref))
    }

    /// The collection of kind `T` at `key`; WRONGTYPE if it holds another.
    fn read<T: Kind>(&mut self, key: &[u8]) -> Result<Option<&T>, Reply> {
        match self.get(key)? {
            None => Ok(None),
            Some(stored) => match stored.collection.as_deref().and_then(T::of) {
                Some(value) => Ok(Some(value)),
                None => Err(args::wrong_type()),
            },
        }
    }

    /// Takes the collection of kind `T` out of `key` (to change it and
    /// [`put`](Self::put) it back); WRONGTYPE, and nothing taken, if the
    /// key holds another kind.
    fn take<T: Kind>(&mut self, key: &[u8]) -> Result<Option<Held<T>>, Reply> {
        self.read::<T>(key)?;
        let key_ref = self.key_ref(key);
        let Some((_, stored)) = self.shard(key)?.remove(&key_ref) else {
            return Ok(None);
        };
        let expiry = stored.item.expiry;
        let value = stored.collection.and_then(|c| T::from(*c).ok());
        Ok(value.map(|value| Held { value, expiry }))
    }

    /// [`take`](Self::take), or a new empty collection.
    fn take_or_new<T: Kind>(&mut self, key: &[u8]) -> Result<Held<T>, Reply> {
        Ok(self.take(key)?.unwrap_or_else(|| Held::new(T::default())))
    }

    /// Puts a collection at `key`; an empty one leaves the key absent.
    fn put<T: Kind>(&mut self, key: &[u8], held: Held<T>) -> Result<(), Reply> {
        if held.value.is_empty() {
            return Ok(());
        }
        let stored = Stored {
            item: Item {
                value: Bytes::new(),
                flags: 0,
                cas: self.backend.new_cas(),
                expiry: held.expiry,
            },
            collection: Some(Box::new(held.value.into_collection())),
        };
        self.replace(key, stored)
    }

    /// A STORE command's result at `key`, replacing what it held (if too
    /// large, nothing changes); an empty result removes the key.
    fn store<T: Kind>(&mut self, key: &[u8], held: Held<T>) -> Result<(), Reply> {
        match held.value.is_empty() {
            true => self.remove(key).map(drop),
            false => self.put(key, held),
        }
    }

    /// Whether `key` can grow by `growth` bytes and still be held (a
    /// collection is taken out to change it: one that could not go back
    /// must not be taken).
    fn has_room(&mut self, key: &[u8], growth: u64) -> Result<bool, Reply> {
        let current = self.get(key)?.map_or(0, |stored| {
            stored.collection.as_ref().map_or(0, |c| c.weight()) + stored.item.value.len() as u64
        });
        let limit = self.backend.max_item_weight;
        Ok(current + growth + key.len() as u64 + 96 <= limit)
    }

    /// Sets what `key` holds (any kind), replacing what it held.
    fn replace(&mut self, key: &[u8], stored: Stored) -> Result<(), Reply> {
        let (backend, key_ref) = (self.backend, self.key_ref(key));
        let shard = self.shard(key)?;
        backend
            .insert(shard, key_ref, stored)
            .map_err(|_| args::out_of_memory())
    }

    /// Removes `key`; whether it held anything.
    fn remove(&mut self, key: &[u8]) -> Result<bool, Reply> {
        let (backend, key_ref) = (self.backend, self.key_ref(key));
        let shard = self.shard(key)?;
        Ok(backend.removed_live(shard, &key_ref).is_some())
    }
}
