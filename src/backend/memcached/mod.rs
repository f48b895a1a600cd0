//! `memcached://host:port[:weight][,host:port[:weight]...]`: a pool of real
//! memcached servers.
//!
//! Keys are spread with ketama ([`ketama`], the same placement as twemproxy
//! and libmemcached); each server gets a few long-lived pipelined connections
//! ([`crate::backend::pipeline`]), re-opened when they break; operations become memcached
//! meta commands ([`wire`]) so that flags, CAS ids and TTLs round-trip.
//!
//! Requests from memcached clients on keys memcached can hold as they are
//! skip the translation: they are forwarded as they came ([`forward`]) and
//! memcached's replies relayed as they came.
//!
//! What memcached cannot do is refused with an error that says so: listing
//! keys (KEYS, SCAN, DBSIZE), flushing one redis database other than 0, and
//! MSETNX. Compound operations (GETDEL, SET ... GET, KEEPTTL, EXPIRE with a
//! condition) are two pipelined commands on one connection, not atomic
//! against other clients of the pool.

mod forward;
pub mod ketama;
mod listing;
mod operations;
pub mod placement;
mod wire;

use operations::store_status;

pub use listing::Listed;
pub use wire::from_wire;

use std::net::ToSocketAddrs;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::try_join_all;
use keyway_protocol::memcache::Response;

use self::ketama::Server;
use self::placement::Placement;
use self::wire::{exptime, flag, item, meta, number, unexpected, wire_key, WireKey};
use super::pipeline::{Expect, Memcache, MemcacheReply, Pool, PoolOptions};
use super::{BackendError, Result};
use crate::config::BackendConfig;
use crate::op::{groups, Db, Expiry, Item, Store, StoreOutcome, StoreStatus, Ttl};

/// Connections per server when the config does not set `connections`.
const DEFAULT_CONNECTIONS: usize = 2;
const MAX_VALUE: usize = 64 * 1024 * 1024;

type ServerPool = Pool<Memcache>;

async fn call(pool: &ServerPool, request: BytesMut, expect: Expect) -> Result<Vec<Response>> {
    let replies = call_raw(pool, request.freeze(), expect).await?;
    Ok(replies.into_iter().map(|reply| reply.response).collect())
}

async fn call_raw(pool: &ServerPool, request: Bytes, expect: Expect) -> Result<Vec<MemcacheReply>> {
    pool.call(request, expect)
        .await
        .map_err(|e| unavailable(&e.to_string()))
}

fn unavailable(message: &str) -> BackendError {
    BackendError::Unavailable {
        backend: "memcached".into(),
        message: message.into(),
    }
}

fn unsupported(what: &str) -> BackendError {
    BackendError::Unsupported(format!("{what} is not possible on a memcached backend"))
}

pub struct MemcachedBackend {
    pools: Vec<Arc<ServerPool>>,
    placement: Placement,
}

impl MemcachedBackend {
    pub fn new(servers: &[Server], config: &BackendConfig) -> std::result::Result<Self, String> {
        let connections = config.connections.unwrap_or(DEFAULT_CONNECTIONS);
        let pools = servers
            .iter()
            .map(|server| {
                let addr = (server.host.as_str(), server.port)
                    .to_socket_addrs()
                    .map_err(|e| format!("{}:{}: {e}", server.host, server.port))?
                    .next()
                    .ok_or_else(|| format!("{}:{}: no address", server.host, server.port))?;
                let tls = config
                    .uses_tls()
                    .then(|| config.tls_connector(&server.host))
                    .transpose()?;
                Ok(Arc::new(ServerPool::new(
                    addr,
                    PoolOptions {
                        connections,
                        connect_timeout: config.connect_timeout(),
                        request_timeout: config.request_timeout(),
                        max_value: MAX_VALUE,
                        handshake: None,
                        tls,
                        follow: Some(server.host.clone()),
                        locate: None,
                    },
                )))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        super::pipeline::follow_names(
            pools.iter().map(Arc::downgrade).collect(),
            config.resolve_interval(),
        );
        Ok(Self {
            pools,
            placement: Placement::new(config.placement, servers),
        })
    }

    /// Each server's address, in configuration order.
    pub fn server_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.pools.iter().map(|pool| pool.addr()).collect()
    }

    /// Every key on every server, from `lru_crawler metadump hash` (or
    /// `all` before memcached 1.6.9), with the server that listed it.
    pub async fn list_keys(&self) -> std::result::Result<Vec<Listed>, String> {
        listing::list_keys(&self.pools).await
    }

    /// Dumps merged until two in a row add nothing (at most eight): with
    /// `metadump all` (memcached without `metadump hash`), one dump can miss
    /// an item that the LRU maintainer moves between queues while the
    /// crawler passes (a recently written one, mostly).
    pub async fn list_keys_settled(&self) -> std::result::Result<Vec<Listed>, String> {
        let mut keys = self.list_keys().await?;
        let mut seen: std::collections::HashSet<(usize, Db, Bytes)> = keys
            .iter()
            .map(|l| (l.server, l.db, l.key.clone()))
            .collect();
        let mut quiet = 0;
        for _ in 0..7 {
            let before = keys.len();
            for listed in self.list_keys().await? {
                if seen.insert((listed.server, listed.db, listed.key.clone())) {
                    keys.push(listed);
                }
            }
            quiet = if keys.len() == before { quiet + 1 } else { 0 };
            if quiet == 2 {
                break;
            }
        }
        Ok(keys)
    }

    /// A dump command (`stats cachedump`, `lru_crawler metadump`) on every
    /// server in turn, each on a connection of its own: their lines in
    /// server order under one `END`. A server's refusal (one line, as
    /// memcached words it) is the answer instead.
    pub async fn dump(&self, command: &str) -> std::result::Result<Vec<u8>, String> {
        let mut all = Vec::new();
        for pool in &self.pools {
            let dump = listing::dump(pool, command).await?;
            match dump.strip_suffix(b"END\r\n") {
                Some(lines) => all.extend_from_slice(lines),
                None => return Ok(dump),
            }
        }
        all.extend_from_slice(b"END\r\n");
        Ok(all)
    }

    /// `version` to every server, concurrently.
    pub async fn probe(&self) -> Result<()> {
        let probes = self.pools.iter().map(|pool| async move {
            let request = BytesMut::from(&b"version\r\n"[..]);
            match call(pool, request, Expect::One).await?.pop() {
                Some(Response::Version(_)) => Ok(()),
                other => Err(unavailable(&format!(
                    "{}: unexpected reply to version: {other:?}",
                    pool.addr()
                ))),
            }
        });
        futures_util::future::try_join_all(probes).await.map(drop)
    }

    /// Open connections and the most kept, over every server.
    pub fn connections(&self) -> (usize, usize) {
        self.pools.iter().fold((0, 0), |(open, max), pool| {
            (open + pool.open_connections(), max + pool.max_connections())
        })
    }

    fn pool(&self, key: &WireKey) -> &ServerPool {
        &self.pools[self.placement.server_for(&key.hashed)]
    }

    /// One request to the server owning `key`, expecting `count` replies.
    async fn call_one(
        &self,
        key: &WireKey,
        request: BytesMut,
        count: usize,
    ) -> Result<Vec<Response>> {
        call(self.pool(key), request, Expect::Count(count)).await
    }

    async fn get_items(
        &self,
        db: Db,
        keys: &[Bytes],
        touch: Option<Expiry>,
    ) -> Result<Vec<Option<Item>>> {
        let touch = touch.map(|e| format!("T{}", exptime(e)));
        let mut flags = vec!["v", "f", "c", "t"];
        if let Some(touch) = &touch {
            flags.push(touch);
        }
        self.per_key(db, keys, "mg", &flags, item, None).await
    }

    /// Items for `keys` read from server `server` (by its position in the
    /// URL), wherever the placement would look: `keyway migrate` reads each
    /// key from the server whose dump listed it.
    pub async fn get_on(&self, server: usize, db: Db, keys: &[Bytes]) -> Result<Vec<Option<Item>>> {
        self.per_key(db, keys, "mg", &["v", "f", "c", "t"], item, Some(server))
            .await
    }

    /// Sends one meta command per key, batched per server (one pipelined
    /// request each, the servers concurrently), and decodes each reply with
    /// `decode`, in request order.
    async fn per_key<T: Clone + Default>(
        &self,
        db: Db,
        keys: &[Bytes],
        command: &str,
        flags: &[&str],
        decode: impl Fn(&WireKey, Response) -> Result<T>,
        on: Option<usize>,
    ) -> Result<Vec<T>> {
        let wires = keys
            .iter()
            .map(|key| wire_key(db, key))
            .collect::<Result<Vec<_>>>()?;
        let servers = wires.iter().enumerate().map(|(position, key)| {
            let server = on.unwrap_or_else(|| self.placement.server_for(&key.hashed));
            (server, position)
        });
        let (wires, decode) = (&wires, &decode);
        let calls = groups::by_owner(servers, |a, b| a == b).into_iter().map(
            |(server, positions)| async move {
                let mut request = BytesMut::new();
                for &position in &positions {
                    meta(&mut request, command, &wires[position], flags);
                }
                let expect = Expect::Count(positions.len());
                let replies = call(&self.pools[server], request, expect).await?;
                let decoded = positions
                    .iter()
                    .zip(replies)
                    .map(|(&position, reply)| decode(&wires[position], reply))
                    .collect::<Result<Vec<T>>>()?;
                Ok::<_, BackendError>((positions, decoded))
            },
        );
        Ok(groups::in_request_order(
            keys.len(),
            try_join_all(calls).await?,
        ))
    }

    /// A read-modify-write of a long key's value (prepend, arithmetic):
    /// memcached would apply those to the stored bytes, header included.
    /// `change` gets the current item and returns the new value (or `None`
    /// to leave it); the write carries the CAS id read, and is retried when
    /// another client wrote in between.
    async fn rewrite_long<T>(
        &self,
        db: Db,
        key: &Bytes,
        mut change: impl FnMut(Option<&Item>) -> Result<(Option<Bytes>, T)>,
    ) -> Result<T> {
        const TRIES: usize = 16;
        let wire = wire_key(db, key)?;
        for _ in 0..TRIES {
            let current = self
                .get_items(db, std::slice::from_ref(key), None)
                .await?
                .remove(0);
            let (value, answer) = change(current.as_ref())?;
            let Some(value) = value else {
                return Ok(answer);
            };
            let stored = wire.stored_value(&value);
            let len = stored.len().to_string();
            let (flags, expiry) = current
                .as_ref()
                .map_or((0, Expiry::Never), |item| (item.flags, item.expiry));
            let mut mode = vec![
                len.clone(),
                format!("F{flags}"),
                format!("T{}", exptime(expiry)),
            ];
            mode.push(match &current {
                Some(item) => format!("C{}", item.cas),
                None => "ME".into(),
            });
            let mut request = BytesMut::new();
            let mode: Vec<&str> = mode.iter().map(String::as_str).collect();
            meta(&mut request, "ms", &wire, &mode);
            request.put_slice(&stored);
            request.put_slice(b"\r\n");
            match store_status(self.call_one(&wire, request, 1).await?.remove(0))? {
                StoreStatus::Stored => return Ok(answer),
                // Written or created by another client meanwhile: again.
                _ => continue,
            }
        }
        Err(unavailable(
            "a long key's value kept changing under a read-modify-write; try again",
        ))
    }

    /// memcached `prepend` (redis has none) on a long key.
    async fn prepend_long(&self, db: Db, store: Store) -> Result<StoreOutcome> {
        let status = self
            .rewrite_long(db, &store.key, |current| {
                Ok(match current {
                    None => (None, StoreStatus::NotStored),
                    Some(item) => {
                        let mut value = BytesMut::from(&store.value[..]);
                        value.put_slice(&item.value);
                        (Some(value.freeze()), StoreStatus::Stored)
                    }
                })
            })
            .await?;
        Ok(StoreOutcome {
            status,
            old: None,
            len: 0,
        })
    }

    async fn ttl_of(&self, key: &WireKey) -> Result<Ttl> {
        let mut request = BytesMut::new();
        meta(&mut request, "mg", key, &["t"]);
        match self.call_one(key, request, 1).await?.remove(0) {
            Response::Meta { code, flags, .. } if &code == b"HD" => {
                match number::<i64>(flag(&flags, b't')) {
                    Some(seconds) if seconds >= 0 => Ok(Ttl::Millis(seconds as u64 * 1000)),
                    _ => Ok(Ttl::Persistent),
                }
            }
            Response::Meta { code, .. } if &code == b"EN" => Ok(Ttl::Missing),
            other => Err(unexpected(other)),
        }
    }
}
