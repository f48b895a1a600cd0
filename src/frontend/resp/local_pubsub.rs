//! Pub/sub where the routes reach no redis server: Keyway's own broker
//! (`session::broker`), answering as redis-server does, byte for byte:
//! confirmations and messages as arrays under RESP2 and pushes under RESP3,
//! RESP2's subscribed context (PING's `pong`, other commands refused), and
//! PUBSUB's subcommands.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use keyway_protocol::resp::{encode, Reply, Version};
use tokio::sync::mpsc;

use super::errors::unknown_command;
use super::redis_arity::redis_full_name;
use super::RespSession;
use crate::session::broker::{Delivery, Kind, QUEUE};
use crate::session::clients::Clients;
use crate::session::Flow;

/// A client subscribed on Keyway's broker.
pub(super) struct LocalSubscriber {
    id: u64,
    deliveries: mpsc::Receiver<Delivery>,
    /// Given to the broker with each subscription; weak here, so that when
    /// the broker drops this client (it fell [`QUEUE`] behind) the queue
    /// ends and the client is disconnected.
    sender: mpsc::WeakSender<Delivery>,
    /// Channels, patterns, shard channels.
    names: [HashSet<Bytes>; 3],
    clients: Arc<Clients>,
}

impl LocalSubscriber {
    /// Its channels, patterns and shard channels.
    pub(super) fn names(&self) -> &[HashSet<Bytes>; 3] {
        &self.names
    }
}

impl Drop for LocalSubscriber {
    fn drop(&mut self) {
        for (kind, names) in KINDS.iter().zip(&self.names) {
            for name in names {
                self.clients.broker.unsubscribe(*kind, name, self.id);
            }
        }
    }
}

const KINDS: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

fn index(kind: Kind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// One element of a confirmation or message.
enum Item<'a> {
    Bulk(&'a [u8]),
    Null,
    Integer(usize),
}

/// A confirmation or message: an array under RESP2, a push under RESP3.
fn push(out: &mut BytesMut, version: Version, items: &[Item]) {
    let kind = if version == Version::Resp3 { '>' } else { '*' };
    out.put_slice(format!("{kind}{}\r\n", items.len()).as_bytes());
    for item in items {
        match item {
            Item::Bulk(bytes) => {
                out.put_slice(format!("${}\r\n", bytes.len()).as_bytes());
                out.put_slice(bytes);
                out.put_slice(b"\r\n");
            }
            Item::Null if version == Version::Resp3 => out.put_slice(b"_\r\n"),
            Item::Null => out.put_slice(b"$-1\r\n"),
            Item::Integer(n) => out.put_slice(format!(":{n}\r\n").as_bytes()),
        }
    }
}

/// A delivery as the subscriber's protocol writes it.
pub(super) fn write_delivery(delivery: &Delivery, version: Version, out: &mut BytesMut) {
    match delivery {
        Delivery::Message {
            shard,
            channel,
            payload,
        } => {
            let kind: &[u8] = if *shard { b"smessage" } else { b"message" };
            push(
                out,
                version,
                &[Item::Bulk(kind), Item::Bulk(channel), Item::Bulk(payload)],
            )
        }
        Delivery::PMessage {
            pattern,
            channel,
            payload,
        } => push(
            out,
            version,
            &[
                Item::Bulk(b"pmessage"),
                Item::Bulk(pattern),
                Item::Bulk(channel),
                Item::Bulk(payload),
            ],
        ),
    }
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

impl RespSession {
    /// A pub/sub command, or any command while subscribed, where the
    /// routes reach no redis. `None`: the usual path takes it.
    pub(super) fn run_local_pubsub(&mut self, args: &[Bytes], out: &mut BytesMut) -> Option<Flow> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let (subscribe, kind) = match name.as_str() {
            "subscribe" => (Some(true), Kind::Channel),
            "psubscribe" => (Some(true), Kind::Pattern),
            "ssubscribe" => (Some(true), Kind::Shard),
            "unsubscribe" => (Some(false), Kind::Channel),
            "punsubscribe" => (Some(false), Kind::Pattern),
            "sunsubscribe" => (Some(false), Kind::Shard),
            _ => (None, Kind::Channel),
        };
        let channels = matches!(name.as_str(), "publish" | "spublish" | "pubsub");
        let subscribed = self.subscribed_here.is_some();
        let context = subscribed && self.version == Version::Resp2;
        if matches!(name.as_str(), "quit" | "reset")
            || (subscribe.is_none() && !channels && !context)
        {
            return None;
        }
        // redis's own checks come first: the command, then its arguments.
        let reply = match redis_full_name(args) {
            Err(None) => unknown_command(args),
            Err(Some(error)) => Reply::error(error),
            Ok(full) if context && subscribe.is_none() && name != "ping" => Reply::error(format!(
                "ERR Can't execute '{full}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / \
                 QUIT / RESET are allowed in this context"
            )),
            Ok(_) if name == "ping" => {
                let arg = args.get(1).map_or(&b""[..], |a| &a[..]);
                push(out, Version::Resp2, &[Item::Bulk(b"pong"), Item::Bulk(arg)]);
                return Some(Flow::Continue);
            }
            Ok(_) => match subscribe {
                Some(true) => return Some(self.subscribe_here(kind, &args[1..], out)),
                Some(false) => {
                    self.unsubscribe_here(kind, &args[1..], out);
                    return Some(Flow::Continue);
                }
                None => self.channels_here(&name, args),
            },
        };
        encode(&reply, self.version, out);
        Some(Flow::Continue)
    }

    fn subscribe_here(&mut self, kind: Kind, names: &[Bytes], out: &mut BytesMut) -> Flow {
        let id = self.id;
        let sender = match &self.subscribed_here {
            Some(subscriber) => match subscriber.sender.upgrade() {
                Some(sender) => sender,
                // The broker dropped it: it fell too far behind.
                None => return Flow::Close,
            },
            None => {
                let (sender, deliveries) = mpsc::channel(QUEUE);
                self.subscribed_here = Some(LocalSubscriber {
                    id,
                    deliveries,
                    sender: sender.downgrade(),
                    names: Default::default(),
                    clients: self.shared.clients.clone(),
                });
                sender
            }
        };
        let Some(subscriber) = self.subscribed_here.as_mut() else {
            return Flow::Close;
        };
        for name in names {
            subscriber.names[index(kind)].insert(name.clone());
            self.shared
                .clients
                .broker
                .subscribe(kind, name, id, &sender);
            let count = match kind {
                Kind::Shard => subscriber.names[2].len(),
                _ => subscriber.names[0].len() + subscriber.names[1].len(),
            };
            let confirmation: &[u8] = match kind {
                Kind::Channel => b"subscribe",
                Kind::Pattern => b"psubscribe",
                Kind::Shard => b"ssubscribe",
            };
            push(
                out,
                self.version,
                &[
                    Item::Bulk(confirmation),
                    Item::Bulk(name),
                    Item::Integer(count),
                ],
            );
        }
        self.show_subscriptions();
        Flow::Continue
    }

    fn unsubscribe_here(&mut self, kind: Kind, names: &[Bytes], out: &mut BytesMut) {
        let confirmation: &[u8] = match kind {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        };
        let empty: [HashSet<Bytes>; 3] = Default::default();
        let held = self.subscribed_here.as_ref().map_or(&empty, |s| &s.names);
        let names: Vec<Bytes> = match names {
            [] => held[index(kind)].iter().cloned().collect(),
            names => names.to_vec(),
        };
        let count = |held: &[HashSet<Bytes>; 3]| match kind {
            Kind::Shard => held[2].len(),
            _ => held[0].len() + held[1].len(),
        };
        if names.is_empty() {
            let left = count(held);
            push(
                out,
                self.version,
                &[Item::Bulk(confirmation), Item::Null, Item::Integer(left)],
            );
        }
        for name in names {
            let mut left = 0;
            if let Some(subscriber) = &mut self.subscribed_here {
                if subscriber.names[index(kind)].remove(&name) {
                    self.shared.clients.broker.unsubscribe(kind, &name, self.id);
                }
                left = count(&subscriber.names);
            }
            push(
                out,
                self.version,
                &[
                    Item::Bulk(confirmation),
                    Item::Bulk(&name),
                    Item::Integer(left),
                ],
            );
        }
        if self
            .subscribed_here
            .as_ref()
            .is_some_and(|s| s.names.iter().all(HashSet::is_empty))
        {
            self.subscribed_here = None;
        }
        self.show_subscriptions();
    }

    /// PUBLISH, SPUBLISH and PUBSUB's subcommands on the broker.
    fn channels_here(&self, name: &str, args: &[Bytes]) -> Reply {
        let broker = &self.shared.clients.broker;
        let bulk_list =
            |names: Vec<Bytes>| Reply::Array(names.into_iter().map(Reply::Bulk).collect());
        let counts = |kind: Kind| {
            let pairs = args[2..].iter().flat_map(|channel| {
                let n = broker.subscribers(kind, channel) as i64;
                [Reply::Bulk(channel.clone()), Reply::Integer(n)]
            });
            Reply::Array(pairs.collect())
        };
        match name {
            "publish" => Reply::Integer(broker.publish(false, &args[1], &args[2]) as i64),
            "spublish" => Reply::Integer(broker.publish(true, &args[1], &args[2]) as i64),
            _ => {
                let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
                let pattern = args.get(2).map(|p| &p[..]);
                match sub.as_str() {
                    "channels" | "shardchannels" if args.len() > 3 => Reply::error(format!(
                        "ERR unknown subcommand or wrong number of arguments for '{}'. Try \
                         PUBSUB HELP.",
                        String::from_utf8_lossy(&args[1])
                    )),
                    "channels" => bulk_list(broker.channels(Kind::Channel, pattern)),
                    "shardchannels" => bulk_list(broker.channels(Kind::Shard, pattern)),
                    "numsub" => counts(Kind::Channel),
                    "shardnumsub" => counts(Kind::Shard),
                    "numpat" => Reply::Integer(broker.patterns() as i64),
                    _ => Reply::Array(
                        PUBSUB_HELP
                            .iter()
                            .map(|line| Reply::Simple(Bytes::from_static(line.as_bytes())))
                            .collect(),
                    ),
                }
            }
        }
    }

    fn show_subscriptions(&self) {
        let counts = self
            .subscribed_here
            .as_ref()
            .map_or([0; 3], |s| s.names.each_ref().map(HashSet::len));
        self.client.state.lock().subscriptions = counts;
    }

    /// The next message for a client subscribed here; `None` when the
    /// broker dropped it (it fell too far behind). Never resolves while
    /// the client is not subscribed here.
    pub(super) async fn next_delivery(
        subscriber: &mut Option<LocalSubscriber>,
    ) -> Option<Delivery> {
        match subscriber {
            Some(subscriber) => subscriber.deliveries.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Deliveries already queued, written without waiting.
    pub(super) fn ready_deliveries(&mut self, out: &mut BytesMut) {
        if let Some(subscriber) = &mut self.subscribed_here {
            while let Ok(delivery) = subscriber.deliveries.try_recv() {
                write_delivery(&delivery, self.version, out);
            }
        }
    }
}
