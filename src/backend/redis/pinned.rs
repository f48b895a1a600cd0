//! A redis connection of one client's own, for what a shared pipelined
//! connection cannot carry: WATCH ... EXEC (redis watches per connection)
//! blocking pops (a reply that may take the whole timeout), pub/sub and
//! MONITOR (what redis sends unasked). Opened as
//! the pool's connections are (TLS, HELLO, AUTH) in the client's database,
//! used by that client alone, and closed when it is done with it.
//!
//! A reply is awaited for the backend's `request_timeout_ms`, as on the
//! shared connections, except where the client asked to wait (a blocking
//! pop: [`Pinned::send_waiting`]) and for what redis sends unasked
//! ([`Pinned::next_frame`]). Past the timeout the connection is no use (a
//! late reply would answer the next request): the caller drops it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::{frame_backend_reply, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::batch::command;
use super::{text, RedisBackend, Servers, MAX_REPLY};
use crate::backend::pipeline::Io;
use crate::backend::{BackendError, Result};
use crate::op::Db;

pub struct Pinned {
    /// Only ever used through `&mut self` (`get_mut`, no locking): the
    /// mutex makes a connection that is Send also Sync, as the session
    /// holding it must be.
    io: std::sync::Mutex<Box<dyn Io>>,
    buffer: BytesMut,
    version: Version,
    backend: String,
    /// RESP3 pushes (a tracking client's invalidations) read while waiting
    /// for replies, for the caller to relay in order.
    pushes: Vec<Bytes>,
    /// The backend's request_timeout_ms.
    request_timeout: Duration,
}

impl RedisBackend {
    /// A connection of its own for a client speaking `version` in Keyway
    /// database `db` (one redis server, not a cluster).
    pub async fn pin(&self, version: Version, db: Db) -> Result<Pinned> {
        let (io, handshake, addr, request_timeout) = match &self.servers {
            Servers::One { pool, .. } if version == Version::Resp3 => (
                pool.dedicated().await,
                pool.handshake().cloned(),
                pool.addr(),
                pool.request_timeout(),
            ),
            Servers::One { pool2, .. } => (
                pool2.dedicated().await,
                pool2.handshake().cloned(),
                pool2.addr(),
                pool2.request_timeout(),
            ),
            Servers::Cluster(_) => {
                return Err(BackendError::Unsupported(
                    "a connection of one client's own (WATCH, blocking pops) is not built for \
                     a Redis Cluster route"
                        .into(),
                ))
            }
        };
        let backend = addr.to_string();
        let io = io.map_err(|e| BackendError::Unavailable {
            backend: backend.clone(),
            message: e.to_string(),
        })?;
        let mut pinned = Pinned {
            io: std::sync::Mutex::new(io),
            buffer: BytesMut::new(),
            version,
            backend,
            pushes: Vec::new(),
            request_timeout,
        };
        let mut request = BytesMut::new();
        let mut count = 0;
        if let Some((hello, replies)) = handshake {
            request.extend_from_slice(&hello);
            count += replies;
        }
        let target = u16::from(self.base_db) + u16::from(db);
        if target >= 16 {
            return Err(BackendError::Unsupported(format!(
                "database {db} maps to redis database {target}, past the 16 a redis has"
            )));
        }
        command(&mut request, &[b"SELECT", &text(target)]);
        count += 1;
        let replies = pinned.call(&request, count).await?;
        if let Some(refused) = replies.iter().find(|r| r.starts_with(b"-")) {
            return Err(pinned.failed(&String::from_utf8_lossy(refused)));
        }
        Ok(pinned)
    }
}

impl Pinned {
    /// Sends whole commands and reads `count` replies as redis sent them,
    /// within the backend's request_timeout_ms.
    pub async fn call(&mut self, request: &[u8], count: usize) -> Result<Vec<Bytes>> {
        let limit = self.request_timeout;
        match tokio::time::timeout(limit, self.call_waiting(request, count)).await {
            Ok(replies) => replies,
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> BackendError {
        self.failed(&format!(
            "no reply within request_timeout_ms ({} ms); the connection is closed",
            self.request_timeout.as_millis()
        ))
    }

    /// [`call`](Self::call), waiting as long as redis takes: for a command
    /// that waits as long as the client asked (a blocking pop's own timeout
    /// bounds it).
    async fn call_waiting(&mut self, request: &[u8], count: usize) -> Result<Vec<Bytes>> {
        let backend = self.backend.clone();
        let failed = |why: &str| BackendError::Unavailable {
            backend: backend.clone(),
            message: why.to_string(),
        };
        let io = self.io.get_mut().map_err(|_| failed("poisoned"))?;
        io.write_all(request)
            .await
            .map_err(|e| failed(&e.to_string()))?;
        let mut replies = Vec::with_capacity(count);
        while replies.len() < count {
            match frame_backend_reply(&mut self.buffer, MAX_REPLY, self.version) {
                Ok(Some(push)) if push.starts_with(b">") => {
                    self.pushes.push(push);
                    continue;
                }
                Ok(Some(reply)) => {
                    replies.push(reply);
                    continue;
                }
                Ok(None) => {}
                Err(error) => return Err(failed(&error.to_string())),
            }
            match io.read_buf(&mut self.buffer).await {
                Ok(0) => return Err(failed("connection closed")),
                Ok(_) => {}
                Err(error) => return Err(failed(&error.to_string())),
            }
        }
        Ok(replies)
    }

    fn failed(&self, why: &str) -> BackendError {
        BackendError::Unavailable {
            backend: self.backend.clone(),
            message: why.to_string(),
        }
    }
}

/// Pub/sub and MONITOR: redis sends on this connection unasked, so what it
/// sends is read frame by frame, beside the client's requests.
impl Pinned {
    /// Sends whole commands without waiting for their answers, within the
    /// backend's request_timeout_ms (a redis that reads nothing fills the
    /// socket).
    pub async fn write(&mut self, commands: super::Batch) -> Result<()> {
        let limit = self.request_timeout;
        let io = self.io.get_mut().map_err(|_| BackendError::Unavailable {
            backend: self.backend.clone(),
            message: "poisoned".into(),
        })?;
        match tokio::time::timeout(limit, io.write_all(&commands.bytes)).await {
            Ok(written) => written.map_err(|e| self.failed(&e.to_string())),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The next whole reply or push redis sent, as it sent it. Cancel-safe:
    /// what was read before a cancellation stays buffered for the next call.
    pub async fn next_frame(&mut self) -> Result<Bytes> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(frame);
            }
            let io = self.io.get_mut().map_err(|_| BackendError::Unavailable {
                backend: self.backend.clone(),
                message: "poisoned".into(),
            })?;
            match io.read_buf(&mut self.buffer).await {
                Ok(0) => return Err(self.failed("connection closed")),
                Ok(_) => {}
                Err(error) => return Err(self.failed(&error.to_string())),
            }
        }
    }

    /// The next frame within the backend's request_timeout_ms: the answer
    /// to a command just written.
    pub async fn next_answer(&mut self) -> Result<Bytes> {
        let limit = self.request_timeout;
        match tokio::time::timeout(limit, self.next_frame()).await {
            Ok(frame) => frame,
            Err(_) => Err(self.timed_out()),
        }
    }

    /// A whole frame already read, if there is one.
    pub fn buffered_frame(&mut self) -> Result<Option<Bytes>> {
        frame_backend_reply(&mut self.buffer, MAX_REPLY, self.version)
            .map_err(|error| self.failed(&error.to_string()))
    }

    /// The pushes [`call`](Self::call) set aside, in the order they came.
    pub fn take_pushes(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.pushes)
    }

    /// This connection's id on redis (`CLIENT ID`): what `CLIENT TRACKING
    /// ... REDIRECT` names.
    pub async fn redis_id(&mut self) -> Result<i64> {
        let mut request = BytesMut::new();
        command(&mut request, &[b"CLIENT", b"ID"]);
        let reply = self.call(&request, 1).await?.remove(0);
        std::str::from_utf8(
            reply
                .get(1..reply.len().saturating_sub(2))
                .unwrap_or_default(),
        )
        .ok()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| self.failed("CLIENT ID gave no integer"))
    }

    /// The RESP version this connection speaks.
    pub fn version(&self) -> Version {
        self.version
    }
}

impl Pinned {
    /// Sends a batch of whole commands; their replies, in order, within
    /// the backend's request_timeout_ms.
    pub async fn send(&mut self, batch: super::Batch) -> Result<Vec<Bytes>> {
        let count = batch.len();
        self.call(&batch.bytes, count).await
    }

    /// [`send`](Self::send) of commands that wait as long as the client
    /// asked (a blocking pop, XREAD ... BLOCK): no timeout of Keyway's.
    pub async fn send_waiting(&mut self, batch: super::Batch) -> Result<Vec<Bytes>> {
        let count = batch.len();
        self.call_waiting(&batch.bytes, count).await
    }
}
