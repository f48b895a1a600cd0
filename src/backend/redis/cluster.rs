//! `redis-cluster://[user:password@]host:port,host:port...`: a Redis Cluster.
//!
//! The slot map comes from `CLUSTER SLOTS`, asked of the nodes Keyway knows
//! (the URL's first, then every node seen since) until one answers. Each
//! primary gets its own pipelined pools (RESP3 and RESP2, like a single
//! redis). A request is a list of [`Unit`]s, each the commands of one hash
//! slot: units are grouped by the node that serves their slot, each group is
//! sent as one pipelined request, the groups at once, and the replies come
//! back in the units' order. Then, as redis-py's `RedisCluster` does:
//!
//! - `-MOVED slot host:port`: the unit is sent again to that node, and the
//!   slot map is asked for again in the background (a resharding or a
//!   failover moved the slot);
//! - `-ASK slot host:port`: the unit is sent again to that node, each
//!   command after an `ASKING` (a slot being migrated: the key is already
//!   there); the map is not changed;
//! - `-TRYAGAIN` (a multi-key command while its slot is half-migrated): sent
//!   again after a short pause, within the request timeout;
//! - no connection to the node: the map is asked for at once, and the unit
//!   goes to the slot's new owner if the map names another (a replica
//!   promoted). A request that may have reached the node is never sent
//!   twice: its clients get the connection error.
//!
//! A unit that still fails gets an error reply per command, so one node's
//! trouble does not fail the other nodes' replies in a client's pipeline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::resp::{parse_backend_reply, BackendReply as Reply, Version};
use tokio::time::Instant;

use super::unavailable;
use crate::backend::pipeline::{Expect, Pool, Resp2, Resp3};
use crate::backend::{BackendError, Result};
use crate::op::groups;

/// Hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The hash slot of `key` (hash tags honoured), as `CLUSTER KEYSLOT` answers.
pub fn key_slot(key: &[u8]) -> u16 {
    keyway_protocol::resp::key_slot(key)
}

/// Redirections one unit may follow before its clients get an error.
const MAX_REDIRECTS: usize = 8;
/// The pause before a unit refused with `-TRYAGAIN` is sent again.
const TRY_AGAIN_PAUSE: Duration = Duration::from_millis(25);
/// How long a slot map answered is taken as current.
const MAP_FRESH_FOR: Duration = Duration::from_millis(100);
/// `ASKING`, sent before a command redirected by `-ASK`.
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// One primary (or, after a failover, promoted replica) of the cluster.
pub struct Node {
    pub addr: SocketAddr,
    pub pool: Pool<Resp3>,
    pub pool2: Pool<Resp2>,
}

impl Node {
    async fn call(
        &self,
        version: Version,
        request: Bytes,
        count: usize,
    ) -> std::result::Result<Vec<Bytes>, (String, bool)> {
        let expect = Expect::Count(count);
        match version {
            Version::Resp3 => self.pool.call_telling_if_sent(request, expect).await,
            Version::Resp2 => self.pool2.call_telling_if_sent(request, expect).await,
        }
        .map_err(|(error, sent)| (error.to_string(), sent))
    }
}

/// Which node serves each hash slot.
struct SlotMap {
    owners: Vec<Option<Arc<Node>>>,
    /// Every node that serves a slot, by address.
    primaries: Vec<Arc<Node>>,
}

impl SlotMap {
    fn empty() -> Self {
        Self {
            owners: vec![None; SLOTS],
            primaries: Vec::new(),
        }
    }
}

/// Commands for one hash slot, sent together to the node that serves it.
pub struct Unit {
    pub slot: u16,
    /// Whole RESP commands.
    pub request: Bytes,
    /// How many: one reply each.
    pub commands: usize,
    /// `request` is MULTI ... EXEC, redirected as a whole.
    pub transaction: bool,
}

impl Unit {
    pub fn new(slot: u16, request: Bytes, commands: usize) -> Self {
        Self {
            slot,
            request,
            commands,
            transaction: false,
        }
    }

    /// Whether each command needs its own `ASKING` (a transaction or a
    /// single command needs one).
    fn asks_each(&self) -> bool {
        !self.transaction && self.commands > 1
    }

    /// Appends the unit (after `ASKING`s when redirected by `-ASK`) and
    /// returns how many replies that gets.
    fn append(&self, out: &mut BytesMut, asking: bool) -> usize {
        if !asking {
            out.put_slice(&self.request);
            return self.commands;
        }
        if !self.asks_each() {
            out.put_slice(ASKING);
            out.put_slice(&self.request);
            return self.commands + 1;
        }
        // Rare (a slot mid-migration): the commands are found again by
        // decoding the request.
        let mut decoder = keyway_protocol::resp::Decoder::new(Default::default());
        let mut rest = BytesMut::from(&self.request[..]);
        while let Ok(Some(command)) = decoder.decode(&mut rest) {
            out.put_slice(ASKING);
            out.put_slice(&command.raw);
        }
        2 * self.commands
    }

    /// The unit's own replies out of what `append` got.
    fn strip_asking(&self, replies: Vec<Bytes>, asking: bool) -> Vec<Bytes> {
        match (asking, self.asks_each()) {
            (false, _) => replies,
            (true, false) => replies.into_iter().skip(1).collect(),
            (true, true) => replies.into_iter().skip(1).step_by(2).collect(),
        }
    }
}

/// Where a node sent a unit instead of answering it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Redirect {
    Moved(String, u16),
    Ask(String, u16),
    TryAgain,
}

/// The redirection among a unit's replies, if any.
fn redirect_in(replies: &[Bytes]) -> Option<Redirect> {
    replies.iter().find_map(|reply| {
        let text = reply.strip_prefix(b"-")?;
        if text.starts_with(b"TRYAGAIN") {
            return Some(Redirect::TryAgain);
        }
        let moved = text.starts_with(b"MOVED ");
        if !moved && !text.starts_with(b"ASK ") {
            return None;
        }
        // MOVED <slot> <host>:<port> (an empty host: the node that answered).
        let line = std::str::from_utf8(text).ok()?.trim_end();
        let target = line.split(' ').nth(2)?;
        let (host, port) = target.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let host = host.trim_matches(['[', ']']).to_string();
        Some(if moved {
            Redirect::Moved(host, port)
        } else {
            Redirect::Ask(host, port)
        })
    })
}

/// How a unit is doing in [`Cluster::call`].
enum Next {
    /// To the node serving its slot.
    Owner,
    /// To this node (`asking`: after ASKING).
    To(Arc<Node>, bool),
}

/// A unit on its way to a node: which, after `ASKING` or not, and how many
/// redirections it has followed.
#[derive(Clone, Copy)]
struct Member {
    unit: usize,
    asking: bool,
    redirects: usize,
}

/// A Redis Cluster's nodes and slot map.
pub struct Cluster {
    seeds: Vec<(String, u16)>,
    map: ArcSwap<SlotMap>,
    /// Every node met, so pools live on across map changes.
    nodes: Mutex<HashMap<SocketAddr, Arc<Node>>>,
    make_node: Box<dyn Fn(SocketAddr) -> Node + Send + Sync>,
    /// Held while the map is asked for; the instant of the last answer.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    /// A background refresh is queued.
    refreshing: AtomicBool,
    request_timeout: Duration,
    /// Redirections followed and slot maps taken, for `/metrics`.
    pub figures: Figures,
}

/// What a cluster backend has followed since start.
#[derive(Default)]
pub struct Figures {
    pub moved: AtomicU64,
    pub ask: AtomicU64,
    pub try_again: AtomicU64,
    /// Units sent to a slot's new owner after its old one could not be reached.
    pub rerouted: AtomicU64,
    pub slot_maps: AtomicU64,
}

impl Cluster {
    pub fn new(
        seeds: Vec<(String, u16)>,
        request_timeout: Duration,
        make_node: impl Fn(SocketAddr) -> Node + Send + Sync + 'static,
    ) -> Self {
        Self {
            seeds,
            map: ArcSwap::from_pointee(SlotMap::empty()),
            nodes: Mutex::new(HashMap::new()),
            make_node: Box::new(make_node),
            refreshed: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
            request_timeout,
            figures: Figures::default(),
        }
    }

    fn node(&self, addr: SocketAddr) -> Arc<Node> {
        let mut nodes = self.nodes.lock().expect("cluster nodes lock");
        nodes
            .entry(addr)
            .or_insert_with(|| Arc::new((self.make_node)(addr)))
            .clone()
    }

    async fn node_at(&self, host: &str, port: u16, fallback: SocketAddr) -> Option<Arc<Node>> {
        if host.is_empty() {
            return Some(self.node(SocketAddr::new(fallback.ip(), port)));
        }
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Some(self.node(SocketAddr::new(ip, port)));
        }
        let addr = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
        Some(self.node(addr))
    }

    /// The primaries serving slots now (the map asked for first if unknown).
    pub async fn primaries(&self) -> Result<Vec<Arc<Node>>> {
        if self.map.load().primaries.is_empty() {
            self.refresh(None).await?;
        }
        Ok(self.map.load().primaries.clone())
    }

    /// Every node met so far (for connection counts).
    pub fn known_nodes(&self) -> Vec<Arc<Node>> {
        let nodes = self.nodes.lock().expect("cluster nodes lock");
        nodes.values().cloned().collect()
    }

    /// Asks for the slot map, unless it was answered after `since` or less
    /// than [`MAP_FRESH_FOR`] before it (another caller's refresh covers
    /// what this one saw: while a node is down, every request would ask).
    async fn refresh(&self, since: Option<Instant>) -> Result<()> {
        let mut refreshed = self.refreshed.lock().await;
        if let (Some(since), Some(last)) = (since, *refreshed) {
            if last + MAP_FRESH_FOR >= since {
                return Ok(());
            }
        }
        let mut candidates: Vec<Arc<Node>> = self.map.load().primaries.clone();
        let mut why = String::from("no node was asked");
        for (host, port) in &self.seeds {
            match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addrs) => candidates.extend(addrs.take(1).map(|addr| self.node(addr))),
                Err(error) => why = format!("{host}:{port}: {error}"),
            }
        }
        candidates.extend(self.known_nodes());
        let mut asked = Vec::new();
        for node in candidates {
            if asked.contains(&node.addr) {
                continue;
            }
            asked.push(node.addr);
            let mut request = BytesMut::new();
            super::command(&mut request, &[b"CLUSTER", b"SLOTS"]);
            let reply = match node.call(Version::Resp3, request.freeze(), 1).await {
                Ok(mut replies) => replies.remove(0),
                Err((error, _)) => {
                    why = error;
                    continue;
                }
            };
            match self.map_from(&reply, node.addr).await {
                Ok(map) => {
                    self.map.store(Arc::new(map));
                    self.figures.slot_maps.fetch_add(1, Ordering::Relaxed);
                    *refreshed = Some(Instant::now());
                    return Ok(());
                }
                Err(error) => why = format!("{}: {error}", node.addr),
            }
        }
        Err(unavailable(&format!(
            "no node of the cluster answered CLUSTER SLOTS (last: {why}); check the \
             redis-cluster:// addresses and that the servers run with cluster-enabled yes"
        )))
    }

    /// The slot map in a `CLUSTER SLOTS` reply from the node at `from`.
    async fn map_from(
        &self,
        raw: &Bytes,
        from: SocketAddr,
    ) -> std::result::Result<SlotMap, String> {
        let ranges = match parse_backend_reply(raw, Version::Resp3) {
            Ok(Reply::Array(ranges)) => ranges,
            Ok(Reply::Error(why)) => return Err(why),
            other => return Err(format!("CLUSTER SLOTS answered {other:?}")),
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Reply::Array(parts) = range else {
                return Err("a CLUSTER SLOTS entry is not an array".into());
            };
            let (Some(Reply::Integer(start)), Some(Reply::Integer(end)), Some(Reply::Array(node))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err("a CLUSTER SLOTS entry lacks its range or primary".into());
            };
            let (host, port) = match (node.first(), node.get(1)) {
                (Some(Reply::Bulk(host)), Some(Reply::Integer(port))) => {
                    (String::from_utf8_lossy(host).into_owned(), *port)
                }
                _ => return Err("a CLUSTER SLOTS primary lacks its address".into()),
            };
            let port = u16::try_from(port).map_err(|_| format!("port {port}"))?;
            // "?" (no hostname known) as an empty host: the node asked.
            let host = if host == "?" { String::new() } else { host };
            let Some(node) = self.node_at(&host, port, from).await else {
                return Err(format!("cannot resolve {host}:{port}"));
            };
            let (start, end) = (*start as usize, *end as usize);
            if start > end || end >= SLOTS {
                return Err(format!("slot range {start}-{end}"));
            }
            for owner in &mut map.owners[start..=end] {
                *owner = Some(node.clone());
            }
            if !map.primaries.iter().any(|p| p.addr == node.addr) {
                map.primaries.push(node);
            }
        }
        map.primaries.sort_by_key(|node| node.addr);
        Ok(map)
    }

    /// Asks for the map in the background (once at a time).
    fn refresh_soon(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            let since = Instant::now();
            if let Err(error) = cluster.refresh(Some(since)).await {
                tracing::warn!(%error, "redis cluster: cannot refresh the slot map");
            }
            cluster.refreshing.store(false, Ordering::Release);
        });
    }

    /// Sends `units` and returns each one's replies (or why it failed), in order.
    pub async fn call(
        self: &Arc<Self>,
        version: Version,
        units: &[Unit],
    ) -> Vec<Result<Vec<Bytes>>> {
        let deadline = Instant::now() + self.request_timeout;
        let mut results: Vec<Option<Result<Vec<Bytes>>>> = units.iter().map(|_| None).collect();
        let mut todo: Vec<(usize, Next, usize)> =
            (0..units.len()).map(|i| (i, Next::Owner, 0)).collect();
        if self.map.load().primaries.is_empty() {
            if let Err(error) = self.refresh(None).await {
                return units.iter().map(|_| Err(error.clone())).collect();
            }
        }
        while !todo.is_empty() {
            let map = self.map.load_full();
            let mut owners: Vec<(Arc<Node>, Member)> = Vec::new();
            for (i, next, redirects) in todo.drain(..) {
                let (node, asking) = match next {
                    Next::To(node, asking) => (node, asking),
                    Next::Owner => match &map.owners[usize::from(units[i].slot)] {
                        Some(node) => (node.clone(), false),
                        None => {
                            results[i] = Some(Err(unavailable(&format!(
                                "hash slot {} is served by no node of the cluster; \
                                 check CLUSTER SLOTS (every slot must be assigned)",
                                units[i].slot
                            ))));
                            continue;
                        }
                    },
                };
                let member = Member {
                    unit: i,
                    asking,
                    redirects,
                };
                owners.push((node, member));
            }
            let by_node = groups::by_owner(owners, Arc::ptr_eq);
            let sends = by_node.into_iter().map(|(node, members)| async move {
                let (request, counts) = if let [Member {
                    unit: i,
                    asking: false,
                    ..
                }] = members[..]
                {
                    (units[i].request.clone(), vec![units[i].commands])
                } else {
                    let mut request = BytesMut::new();
                    let counts: Vec<usize> = members
                        .iter()
                        .map(|m| units[m.unit].append(&mut request, m.asking))
                        .collect();
                    (request.freeze(), counts)
                };
                let total = counts.iter().sum();
                let replies = node.call(version, request, total).await;
                (node, members, counts, replies)
            });
            let mut lost: Vec<(usize, usize, SocketAddr, String)> = Vec::new();
            let mut pause = false;
            for (node, members, counts, replies) in futures_util::future::join_all(sends).await {
                let replies = match replies {
                    Ok(replies) => replies,
                    Err((error, sent)) => {
                        for m in members {
                            if sent {
                                results[m.unit] = Some(Err(unavailable(&error)));
                            } else {
                                lost.push((m.unit, m.redirects, node.addr, error.clone()));
                            }
                        }
                        if sent {
                            self.refresh_soon();
                        }
                        continue;
                    }
                };
                let mut replies = replies.into_iter();
                for (member, count) in members.into_iter().zip(counts) {
                    let Member {
                        unit: i,
                        asking,
                        redirects,
                    } = member;
                    let mine =
                        units[i].strip_asking(replies.by_ref().take(count).collect(), asking);
                    let redirect = redirect_in(&mine);
                    let Some(redirect) = redirect.filter(|_| redirects < MAX_REDIRECTS) else {
                        results[i] = Some(Ok(mine));
                        continue;
                    };
                    let counter = match redirect {
                        Redirect::Moved(..) => &self.figures.moved,
                        Redirect::Ask(..) => &self.figures.ask,
                        Redirect::TryAgain => &self.figures.try_again,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let next = match redirect {
                        Redirect::TryAgain if Instant::now() + TRY_AGAIN_PAUSE < deadline => {
                            pause = true;
                            Next::Owner
                        }
                        Redirect::TryAgain => {
                            results[i] = Some(Ok(mine));
                            continue;
                        }
                        Redirect::Moved(host, port) => {
                            self.refresh_soon();
                            match self.node_at(&host, port, node.addr).await {
                                Some(to) => Next::To(to, false),
                                None => Next::Owner,
                            }
                        }
                        Redirect::Ask(host, port) => {
                            match self.node_at(&host, port, node.addr).await {
                                Some(to) => Next::To(to, true),
                                None => Next::Owner,
                            }
                        }
                    };
                    todo.push((i, next, redirects + 1));
                }
            }
            if !lost.is_empty() {
                // Nothing was sent: ask for the map, and send again if the
                // slot has a new owner (a replica promoted).
                let since = Instant::now();
                let refreshed = self.refresh(Some(since)).await;
                let map = self.map.load();
                for (i, redirects, addr, error) in lost {
                    let moved = map.owners[usize::from(units[i].slot)]
                        .as_ref()
                        .is_some_and(|owner| owner.addr != addr);
                    if refreshed.is_ok() && moved && redirects < MAX_REDIRECTS {
                        self.figures.rerouted.fetch_add(1, Ordering::Relaxed);
                        todo.push((i, Next::Owner, redirects + 1));
                    } else {
                        results[i] = Some(Err(unavailable(&format!(
                            "{error} (the node serving hash slot {}; the cluster has not \
                             promoted another yet)",
                            units[i].slot
                        ))));
                    }
                }
            }
            if pause {
                tokio::time::sleep(TRY_AGAIN_PAUSE).await;
            }
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(unavailable("no reply"))))
            .collect()
    }
}

impl Cluster {
    /// A client's pipeline of whole commands (ending at `ends`, one hash
    /// slot each), split by the node serving each slot: each node's share
    /// sent at once (the client's bytes as they are when one node serves
    /// them all), the replies put back in the client's order, and only the
    /// commands a node redirected, or that could not be sent, sent again
    /// through [`Cluster::call`] (as are commands whose slot has no owner
    /// in the map, which `call` names). No per-command allocation on the way.
    pub async fn forward_split(
        self: &Arc<Self>,
        version: Version,
        bytes: &Bytes,
        ends: &[usize],
        slots: &[u16],
    ) -> Vec<Bytes> {
        if self.map.load().primaries.is_empty() {
            if let Err(error) = self.refresh(None).await {
                return vec![error_frame(&error); slots.len()];
            }
        }
        let start_of = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
        let (by_node, mut again) = self.by_node(slots);
        let whole = by_node.len() == 1 && again.is_empty();
        let sends = by_node.into_iter().map(|(node, commands)| async move {
            let request = if whole {
                bytes.clone()
            } else {
                let mut request = BytesMut::new();
                for &i in &commands {
                    request.put_slice(&bytes[start_of(i)..ends[i]]);
                }
                request.freeze()
            };
            let replies = node.call(version, request, commands.len()).await;
            (commands, replies)
        });
        let mut replies = vec![Bytes::new(); slots.len()];
        for (commands, answer) in futures_util::future::join_all(sends).await {
            match answer {
                Ok(answers) => {
                    for (i, reply) in commands.into_iter().zip(answers) {
                        if redirect_in(std::slice::from_ref(&reply)).is_some() {
                            again.push(i);
                        }
                        replies[i] = reply;
                    }
                }
                // Not sent: `call` asks for the map and finds the new owner.
                Err((_, false)) => again.extend(commands),
                Err((error, true)) => {
                    self.refresh_soon();
                    let frame = error_frame(&unavailable(&error));
                    for i in commands {
                        replies[i] = frame.clone();
                    }
                }
            }
        }
        if !again.is_empty() {
            self.send_again(version, bytes, ends, slots, again, &mut replies)
                .await;
        }
        replies
    }

    /// The commands of a pipeline (by their hash `slots`) grouped by the node
    /// the slot map says serves them, in order; and those whose slot has no
    /// owner in the map (for [`Cluster::call`] to name).
    fn by_node(&self, slots: &[u16]) -> (Vec<NodeShare>, Vec<usize>) {
        let mut unowned = Vec::new();
        let map = self.map.load();
        let owners = slots.iter().enumerate().filter_map(|(i, &slot)| {
            match map.owners[usize::from(slot)].as_ref() {
                Some(owner) => Some((owner.clone(), i)),
                None => {
                    unowned.push(i);
                    None
                }
            }
        });
        let by_node = groups::by_owner(owners, Arc::ptr_eq);
        (by_node, unowned)
    }

    /// The commands `again` (indexes into the client's pipeline) sent
    /// through [`Cluster::call`], which follows redirects and finds new
    /// owners; their replies put in place.
    async fn send_again(
        self: &Arc<Self>,
        version: Version,
        bytes: &Bytes,
        ends: &[usize],
        slots: &[u16],
        mut again: Vec<usize>,
        replies: &mut [Bytes],
    ) {
        let start_of = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
        again.sort_unstable();
        let units: Vec<Unit> = again
            .iter()
            .map(|&i| Unit::new(slots[i], bytes.slice(start_of(i)..ends[i]), 1))
            .collect();
        for (&i, result) in again.iter().zip(self.call(version, &units).await) {
            replies[i] = match result {
                Ok(mut mine) => mine.remove(0),
                Err(error) => error_frame(&error),
            };
        }
    }
}

/// A node and the commands of a pipeline it serves (their indexes, in order).
type NodeShare = (Arc<Node>, Vec<usize>);

/// A RESP error frame carrying `error`, for each command of a failed unit.
pub fn error_frame(error: &BackendError) -> Bytes {
    let text = error.to_string().replace(['\r', '\n'], " ");
    Bytes::from(format!("-ERR {text}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirections_are_read_as_redis_writes_them() {
        let moved = Bytes::from_static(b"-MOVED 3999 127.0.0.1:6381\r\n");
        assert_eq!(
            redirect_in(&[moved]),
            Some(Redirect::Moved("127.0.0.1".into(), 6381))
        );
        let ask = Bytes::from_static(b"-ASK 3999 :6381\r\n");
        assert_eq!(
            redirect_in(&[ask]),
            Some(Redirect::Ask(String::new(), 6381))
        );
        let v6 = Bytes::from_static(b"-MOVED 1 [::1]:7000\r\n");
        assert_eq!(
            redirect_in(&[v6]),
            Some(Redirect::Moved("::1".into(), 7000))
        );
        let again =
            Bytes::from_static(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n");
        assert_eq!(redirect_in(&[again]), Some(Redirect::TryAgain));
        assert_eq!(redirect_in(&[Bytes::from_static(b"-ERR MOVED\r\n")]), None);
        assert_eq!(redirect_in(&[Bytes::from_static(b"+OK\r\n")]), None);
    }

    #[test]
    fn asking_goes_before_each_command_of_a_unit() {
        let unit = Unit::new(
            1,
            Bytes::from_static(b"*1\r\n$1\r\nA\r\n*1\r\n$1\r\nB\r\n"),
            2,
        );
        let mut out = BytesMut::new();
        assert_eq!(unit.append(&mut out, true), 4);
        assert_eq!(
            &out[..],
            b"*1\r\n$6\r\nASKING\r\n*1\r\n$1\r\nA\r\n*1\r\n$6\r\nASKING\r\n*1\r\n$1\r\nB\r\n"
        );
        let replies = ["+OK\r\n", ":1\r\n", "+OK\r\n", ":2\r\n"]
            .map(|r| Bytes::from_static(r.as_bytes()))
            .to_vec();
        assert_eq!(
            unit.strip_asking(replies, true),
            vec![Bytes::from_static(b":1\r\n"), Bytes::from_static(b":2\r\n")]
        );
    }

    #[test]
    fn key_slots_honour_hash_tags() {
        // Values from redis's CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}foo"), 9500);
    }
}
