//! `redis-sentinel://[user:password@]host:port,host:port/MASTER[/db]`: the
//! redis a set of Redis Sentinels names as the master of MASTER.
//!
//! The pools ask the sentinels (in order, the first that answers wins)
//! before every new connection, so a connection error is followed by asking
//! again; a `-READONLY` reply (a master demoted by a failover) drops the
//! connections so the next request asks again; and a subscription to each
//! sentinel's `+switch-master` moves the pools as soon as a failover is
//! announced. From a sentinel's `+try-failover` for the master until its
//! `+switch-master` (or an abort), requests fail at once with an error
//! that says a failover is under way: the old master still accepts writes
//! until it is demoted, and what it takes then is lost when it resyncs from
//! the new one, so refusing is the honest answer. The URL's credentials are sent to the sentinels too (as
//! kolla-ansible sets one password for both); a sentinel without a password
//! ignores them.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use keyway_protocol::resp::{
    frame_backend_reply, parse_backend_reply, BackendReply as Reply, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::pipeline::{Framer, Locate, Pool};

/// Where the sentinels are and which master to ask them for.
pub struct SentinelLocator {
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
    /// Until when (unix ms; 0: not) requests are refused: a failover was
    /// announced and has not ended (at most [`FENCE_LIMIT`], should its end
    /// never be heard). Read on every request: an atomic, not a lock.
    pub fenced_until: std::sync::atomic::AtomicU64,
}

/// The longest a failover fences requests without news of its end.
const FENCE_LIMIT: Duration = Duration::from_secs(30);

/// The sentinel events a failover's start and end are told by.
const EVENTS: [&[u8]; 6] = [
    b"+try-failover",
    b"+switch-master",
    b"-failover-abort-not-elected",
    b"-failover-abort-no-good-slave",
    b"-failover-abort-slave-timeout",
    b"+failover-end-for-timeout",
];

/// A redis's refusal of AUTH when it has no password: the sentinel is open.
const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured";

impl SentinelLocator {
    /// `AUTH` (when the URL has a password) then `command`, as RESP2.
    fn request(&self, command: &[&[u8]]) -> (BytesMut, usize) {
        let mut out = BytesMut::new();
        let mut replies = 1;
        if let Some(password) = &self.password {
            let user = self.user.as_deref().unwrap_or("default");
            super::command(&mut out, &[b"AUTH", user.as_bytes(), password.as_bytes()]);
            replies += 1;
        }
        super::command(&mut out, command);
        (out, replies)
    }

    /// One sentinel's answer: the master's address, `Ok(None)` if it does
    /// not know the master.
    async fn ask(&self, host: &str, port: u16) -> Result<Option<SocketAddr>, String> {
        let exchange = async {
            let mut stream = TcpStream::connect((host, port))
                .await
                .map_err(|e| e.to_string())?;
            let (request, count) = self.request(&[
                b"SENTINEL",
                b"get-master-addr-by-name",
                self.master.as_bytes(),
            ]);
            stream
                .write_all(&request)
                .await
                .map_err(|e| e.to_string())?;
            let mut replies = read_replies(&mut stream, count).await?;
            let answer = replies.pop().expect("count replies");
            if let Some(Reply::Error(why)) = replies.first() {
                if !why.starts_with(NO_PASSWORD) {
                    return Err(why.clone());
                }
            }
            match answer {
                Reply::Array(parts) if parts.len() == 2 => {
                    let (Reply::Bulk(ip), Reply::Bulk(port)) = (&parts[0], &parts[1]) else {
                        return Err(format!("unexpected address {parts:?}"));
                    };
                    let ip = String::from_utf8_lossy(ip).to_string();
                    let port: u16 = String::from_utf8_lossy(port)
                        .parse()
                        .map_err(|_| "a port that is not a number".to_string())?;
                    let addr = tokio::net::lookup_host((ip.as_str(), port))
                        .await
                        .map_err(|e| e.to_string())?
                        .next();
                    Ok(addr)
                }
                Reply::Null | Reply::NullArray => Ok(None),
                Reply::Error(why) => Err(why),
                other => Err(format!("unexpected reply {other:?}")),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
    }

    /// Subscribes to `+switch-master` on every sentinel, and has `pools`
    /// ask again when one announces a new address for this master; for as
    /// long as any of the pools exists. Reconnects after a second when a
    /// sentinel goes away.
    pub fn watch<F: Framer>(self: &Arc<Self>, pools: Vec<Weak<Pool<F>>>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for (host, port) in self.sentinels.clone() {
            let locator = Arc::downgrade(self);
            let pools = pools.clone();
            tokio::spawn(async move {
                loop {
                    let Some(this) = locator.upgrade() else {
                        return;
                    };
                    if pools.iter().all(|p| p.strong_count() == 0) {
                        return;
                    }
                    let result = this.subscribe(&host, port, &pools).await;
                    if let Err(error) = result {
                        tracing::debug!(sentinel = %format!("{host}:{port}"), %error, "sentinel subscription ended");
                    }
                    drop(this);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }

    /// A pub/sub message's channel and text, if it is an event about this
    /// master.
    fn event_about_master(&self, reply: Reply) -> Option<(String, String)> {
        // ["message", channel, text]; a failover's start and aborts say
        // "master <name> <ip> <port> ...", +switch-master
        // "<name> <old ip> <old port> <new ip> <new port>".
        let Reply::Array(parts) = reply else {
            return None;
        };
        let (Some(Reply::Bulk(channel)), Some(Reply::Bulk(text))) = (parts.get(1), parts.get(2))
        else {
            return None;
        };
        let text = String::from_utf8_lossy(text).into_owned();
        let mut words = text.split(' ');
        let named = match &channel[..] {
            b"+switch-master" => words.next(),
            _ => words.nth(1),
        };
        if named != Some(self.master.as_str()) {
            return None;
        }
        Some((String::from_utf8_lossy(channel).into_owned(), text))
    }

    async fn subscribe<F: Framer>(
        &self,
        host: &str,
        port: u16,
        pools: &[Weak<Pool<F>>],
    ) -> Result<(), String> {
        let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        subscribe.extend(EVENTS);
        let (request, count) = self.request(&subscribe);
        stream
            .write_all(&request)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = BytesMut::new();
        let mut seen = 0;
        loop {
            let reply = next_reply(&mut stream, &mut buf).await?;
            if pools.iter().all(|p| p.strong_count() == 0) {
                return Ok(());
            }
            seen += 1;
            if seen <= count {
                if let Reply::Error(why) = &reply {
                    if !why.starts_with(NO_PASSWORD) {
                        return Err(why.clone());
                    }
                }
                continue;
            }
            let Some((channel, text)) = self.event_about_master(reply) else {
                continue;
            };
            tracing::info!(master = %self.master, event = %channel, %text, "sentinel event");
            if channel == "+try-failover" {
                self.fence(crate::op::now_ms() + FENCE_LIMIT.as_millis() as u64);
                for pool in pools.iter().filter_map(Weak::upgrade) {
                    pool.forget_connections();
                }
                continue;
            }
            self.fence(0);
            for pool in pools.iter().filter_map(Weak::upgrade) {
                pool.follow_name().await;
            }
        }
    }

    fn fence(&self, until_ms: u64) {
        self.fenced_until
            .store(until_ms, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Locate for SentinelLocator {
    fn locate(&self) -> Pin<Box<dyn std::future::Future<Output = Option<SocketAddr>> + Send + '_>> {
        Box::pin(async move {
            for (host, port) in &self.sentinels {
                match self.ask(host, *port).await {
                    Ok(Some(addr)) => return Some(addr),
                    Ok(None) => tracing::warn!(
                        sentinel = %format!("{host}:{port}"),
                        master = %self.master,
                        "the sentinel does not know this master"
                    ),
                    Err(error) => tracing::debug!(
                        sentinel = %format!("{host}:{port}"),
                        %error,
                        "sentinel did not answer"
                    ),
                }
            }
            None
        })
    }

    fn describe(&self) -> String {
        format!("master {} of sentinels", self.master)
    }

    fn fenced(&self) -> Option<String> {
        let until = self.fenced_until.load(std::sync::atomic::Ordering::Relaxed);
        (until != 0 && crate::op::now_ms() < until).then(|| {
            format!(
                "the sentinels are failing over master {}; try again once it is promoted",
                self.master
            )
        })
    }
}

async fn read_replies(stream: &mut TcpStream, count: usize) -> Result<Vec<Reply>, String> {
    let mut buf = BytesMut::new();
    let mut replies = Vec::with_capacity(count);
    while replies.len() < count {
        replies.push(next_reply(stream, &mut buf).await?);
    }
    Ok(replies)
}

/// The sentinel's next reply, reading into `buf` until one is whole.
async fn next_reply(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Reply, String> {
    loop {
        if let Some(raw) =
            frame_backend_reply(buf, 1 << 20, Version::Resp2).map_err(|e| e.to_string())?
        {
            return parse_backend_reply(&raw, Version::Resp2).map_err(|e| e.to_string());
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the sentinel closed the connection".into());
        }
    }
}
