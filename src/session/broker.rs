//! Keyway's own pub/sub, for listeners whose routes reach no redis server
//! (the memory store, SQL, memcached): channels, patterns and shard
//! channels within this process, as one redis-server keeps them. Where the
//! routes reach one redis, pub/sub goes to it instead (see
//! `frontend::resp::listening`), so that publishers and subscribers on
//! every Keyway in front of it meet.
//!
//! Each subscriber has a bounded queue of [`QUEUE`] messages; one that
//! falls that far behind is unsubscribed from everything and disconnected
//! (redis disconnects a subscriber past `client-output-buffer-limit pubsub`),
//! so a slow subscriber cannot make Keyway hold unbounded memory.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::pattern::glob_match;

/// Messages a subscriber may have waiting before it is disconnected.
pub const QUEUE: usize = 4096;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// To a channel it subscribed to (`message`, or `smessage` for a
    /// shard channel).
    Message {
        shard: bool,
        channel: Bytes,
        payload: Bytes,
    },
    /// To a channel one of its patterns matches.
    PMessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
}

/// Channels, patterns, shard channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

type Subscribers = HashMap<u64, mpsc::Sender<Delivery>>;

#[derive(Default)]
struct Subscriptions {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
}

impl Subscriptions {
    fn of(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Drops every subscription of client `id` (it fell behind).
    fn forget(&mut self, id: u64) {
        for map in [&mut self.channels, &mut self.patterns, &mut self.shard] {
            map.retain(|_, subscribers| {
                subscribers.remove(&id);
                !subscribers.is_empty()
            });
        }
    }
}

#[derive(Default)]
pub struct Broker {
    subscriptions: Mutex<Subscriptions>,
}

impl Broker {
    /// Client `id` listens to `name`, its deliveries sent to `to`.
    pub fn subscribe(&self, kind: Kind, name: &Bytes, id: u64, to: &mpsc::Sender<Delivery>) {
        let mut subscriptions = self.subscriptions.lock();
        let subscribers = subscriptions.of(kind).entry(name.clone()).or_default();
        subscribers.insert(id, to.clone());
    }

    pub fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) {
        let mut subscriptions = self.subscriptions.lock();
        let map = subscriptions.of(kind);
        if let Some(subscribers) = map.get_mut(name) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                map.remove(name);
            }
        }
    }

    /// PUBLISH (or SPUBLISH, `shard`): how many subscribers it reached.
    pub fn publish(&self, shard: bool, channel: &Bytes, payload: &Bytes) -> usize {
        let mut subscriptions = self.subscriptions.lock();
        let mut deliveries: Vec<(u64, mpsc::Sender<Delivery>, Delivery)> = Vec::new();
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        if let Some(subscribers) = subscriptions.of(kind).get(channel) {
            for (&id, to) in subscribers {
                let message = Delivery::Message {
                    shard,
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                deliveries.push((id, to.clone(), message));
            }
        }
        if !shard {
            for (pattern, subscribers) in &subscriptions.patterns {
                if !glob_match(pattern, channel) {
                    continue;
                }
                for (&id, to) in subscribers {
                    let message = Delivery::PMessage {
                        pattern: pattern.clone(),
                        channel: channel.clone(),
                        payload: payload.clone(),
                    };
                    deliveries.push((id, to.clone(), message));
                }
            }
        }
        let reached = deliveries.len();
        for (id, to, delivery) in deliveries {
            if let Err(mpsc::error::TrySendError::Full(_)) = to.try_send(delivery) {
                tracing::info!(
                    client = id,
                    queue = QUEUE,
                    "pub/sub subscriber unsubscribed and disconnected: too many messages waiting"
                );
                subscriptions.forget(id);
            }
        }
        reached
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: the channels with a subscriber,
    /// those `pattern` matches.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut subscriptions = self.subscriptions.lock();
        subscriptions
            .of(kind)
            .keys()
            .filter(|name| pattern.is_none_or(|p| glob_match(p, name)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of `name`.
    pub fn subscribers(&self, kind: Kind, name: &[u8]) -> usize {
        let mut subscriptions = self.subscriptions.lock();
        subscriptions.of(kind).get(name).map_or(0, HashMap::len)
    }

    /// PUBSUB NUMPAT: patterns with a subscriber.
    pub fn patterns(&self) -> usize {
        self.subscriptions.lock().patterns.len()
    }
}
