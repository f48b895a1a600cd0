//! One pipelined connection to a memcached server.
//!
//! Callers queue requests; a writer task coalesces everything queued into one
//! write, and a reader task frames replies and hands each to its caller in
//! FIFO order (memcached answers in request order). A caller that times out
//! just stops waiting: its reply is still read and dropped, so the order of
//! the others is kept. When the server breaks the stream, every waiting
//! caller gets an error at once and the connection reports itself closed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{decode_response, Response, ResponseError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How a request's reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One reply line (storage, delete, incr, touch, meta commands...).
    One,
    /// This many replies: a batch of pipelined meta commands sent as one request.
    Count(usize),
    /// `VALUE`s then `END` (get, gets, gat, gats), or `STAT`s then `END`.
    UntilEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection to {0} closed")]
    Closed(SocketAddr),
    #[error("{0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("{0}: {1}")]
    Protocol(SocketAddr, ResponseError),
    #[error("{0}: {1}")]
    Io(SocketAddr, String),
}

type Reply = Result<Vec<Response>, ConnectionError>;

struct Pending {
    request: Bytes,
    expect: Expect,
    reply: oneshot::Sender<Reply>,
}

/// Most bytes the writer coalesces into one write.
const MAX_BATCH: usize = 256 * 1024;
/// Requests that may wait for the writer before callers are slowed down.
const QUEUE: usize = 4096;

pub struct Connection {
    addr: SocketAddr,
    queue: mpsc::Sender<Pending>,
    timeout: Duration,
    /// Cancelled by whichever task first sees the stream break.
    broken: CancellationToken,
}

impl Connection {
    pub async fn connect(
        addr: SocketAddr,
        connect_timeout: Duration,
        timeout: Duration,
        max_value: usize,
    ) -> Result<Self, ConnectionError> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectionError::Timeout(addr, connect_timeout))?
            .map_err(|e| ConnectionError::Io(addr, e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (queue, requests) = mpsc::channel(QUEUE);
        let (in_flight, awaiting) = mpsc::unbounded_channel();
        let broken = CancellationToken::new();
        tokio::spawn(write_loop(addr, write, requests, in_flight, broken.clone()));
        tokio::spawn(read_loop(addr, read, awaiting, max_value, broken.clone()));
        Ok(Self {
            addr,
            queue,
            timeout,
            broken,
        })
    }

    /// False once the server closed or broke the stream; make a new one.
    pub fn is_open(&self) -> bool {
        !self.broken.is_cancelled()
    }

    /// Sends one already-encoded request and waits for its whole reply.
    pub async fn call(&self, request: Bytes, expect: Expect) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                request,
                expect,
                reply,
            })
            .await
            .map_err(|_| ConnectionError::Closed(self.addr))?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ConnectionError::Closed(self.addr)),
            Err(_) => Err(ConnectionError::Timeout(self.addr, self.timeout)),
        }
    }
}

async fn write_loop(
    addr: SocketAddr,
    mut write: OwnedWriteHalf,
    mut requests: mpsc::Receiver<Pending>,
    in_flight: mpsc::UnboundedSender<(Expect, oneshot::Sender<Reply>)>,
    broken: CancellationToken,
) {
    let mut batch = BytesMut::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            first = requests.recv() => first,
            () = broken.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            batch.extend_from_slice(&pending.request);
            // Registered before the bytes go out, so the reader always finds it.
            if in_flight.send((pending.expect, pending.reply)).is_err() {
                return;
            }
            if batch.len() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        if let Err(error) = write.write_all(&batch).await {
            tracing::warn!(%addr, %error, "memcached write failed");
            broken.cancel();
            break;
        }
        batch.clear();
    }
    // Callers still queued learn at once (their reply channel drops), and new
    // ones are refused; the reader fails those already in flight.
    requests.close();
}

async fn read_loop(
    addr: SocketAddr,
    mut read: OwnedReadHalf,
    mut awaiting: mpsc::UnboundedReceiver<(Expect, oneshot::Sender<Reply>)>,
    max_value: usize,
    broken: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut current: Option<(Expect, oneshot::Sender<Reply>, Vec<Response>)> = None;
    let failure = 'read: loop {
        loop {
            match decode_response(&mut buf, max_value) {
                Ok(Some(response)) => {
                    if current.is_none() {
                        let Some((expect, reply)) = awaiting.recv().await else {
                            break 'read ConnectionError::Closed(addr);
                        };
                        current = Some((expect, reply, Vec::new()));
                    }
                    let (expect, _, replies) = current.as_mut().expect("set above");
                    let ends_list =
                        !matches!(response, Response::Value { .. } | Response::Stat(..));
                    replies.push(response);
                    let done = match *expect {
                        Expect::One => true,
                        Expect::Count(n) => replies.len() >= n,
                        Expect::UntilEnd => ends_list,
                    };
                    if done {
                        let (_, reply, replies) = current.take().expect("set above");
                        // The caller may have timed out; its reply is dropped.
                        let _ = reply.send(Ok(replies));
                    }
                }
                Ok(None) => break,
                Err(error) => break 'read ConnectionError::Protocol(addr, error),
            }
        }
        let read = tokio::select! {
            read = read.read_buf(&mut buf) => read,
            () = broken.cancelled() => break ConnectionError::Closed(addr),
        };
        match read {
            Ok(0) => break ConnectionError::Closed(addr),
            Ok(_) => {}
            Err(error) => break ConnectionError::Io(addr, error.to_string()),
        }
    };
    broken.cancel();
    tracing::warn!(%addr, error = %failure, "memcached connection lost");
    if let Some((_, reply, _)) = current.take() {
        let _ = reply.send(Err(failure.clone()));
    }
    awaiting.close();
    while let Some((_, reply)) = awaiting.recv().await {
        let _ = reply.send(Err(failure.clone()));
    }
}
