//! One pipelined connection to a server that answers in request order
//! (memcached, redis), generic over how its replies are framed.
//!
//! Callers queue requests; a writer task coalesces everything queued into one
//! write, and a reader task frames replies and hands each to its caller in
//! FIFO order. When the server breaks the stream, or leaves the oldest
//! request unanswered for the request timeout, every waiting caller gets an
//! error at once and the connection reports itself closed (as twemproxy
//! closes a server connection that times out): on a pipelined connection
//! everything behind a late reply is as late, and the pool opens a fresh one.
//!
//! The timeout is one timer per connection, kept by the reader and re-armed
//! only when it fires, not one timer per request: registering a timer on
//! every request woke the runtime's driver through its eventfd, a syscall per
//! request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{decode_response_raw, Response};
use keyway_protocol::resp::{frame_backend_reply, parse_backend_reply, BackendReply, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a request's reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One reply (one line, one RESP frame).
    One,
    /// This many replies: a batch of pipelined commands sent as one request.
    Count(usize),
    /// memcached: `VALUE`s then `END` (get, gets, gat, gats), or `STAT`s then `END`.
    UntilEnd,
}

/// Frames one server's replies.
pub trait Framer: Send + 'static {
    type Frame: Send + 'static;
    /// Takes one whole reply off the front of `buf`, if there is one.
    fn decode(buf: &mut BytesMut, max_value: usize) -> Result<Option<Self::Frame>, String>;
    /// Whether `frame` is an element of a list that `Expect::UntilEnd` waits out.
    fn continues_list(frame: &Self::Frame) -> bool;
    /// For log lines: which kind of server this is.
    const SERVER: &'static str;
    /// The server's objection, if `frame` is an error reply.
    fn failure(frame: &Self::Frame) -> Option<String>;
}

/// memcached text replies.
pub struct Memcache;

/// A memcached reply, parsed, and its bytes as they came: relayed to
/// memcached clients whose requests were forwarded.
#[derive(Debug, Clone)]
pub struct MemcacheReply {
    pub response: Response,
    pub raw: Bytes,
}

impl Framer for Memcache {
    type Frame = MemcacheReply;
    const SERVER: &'static str = "memcached";
    fn decode(buf: &mut BytesMut, max_value: usize) -> Result<Option<MemcacheReply>, String> {
        let framed = decode_response_raw(buf, max_value).map_err(|e| e.to_string())?;
        Ok(framed.map(|(response, raw)| MemcacheReply { response, raw }))
    }
    fn continues_list(frame: &MemcacheReply) -> bool {
        matches!(frame.response, Response::Value { .. } | Response::Stat(..))
    }
    fn failure(frame: &MemcacheReply) -> Option<String> {
        match &frame.response {
            Response::Error => Some("ERROR".into()),
            Response::ClientError(why) | Response::ServerError(why) => {
                Some(String::from_utf8_lossy(why).into_owned())
            }
            _ => None,
        }
    }
}

/// redis replies in RESP2 (a connection that never sent HELLO 3).
pub struct Resp2;
/// redis replies in RESP3 (after HELLO 3).
pub struct Resp3;

/// Frames are replies' raw bytes: forwarded to clients as they came, and
/// parsed only where Keyway reads them.
macro_rules! resp_framer {
    ($framer:ident, $version:expr) => {
        impl Framer for $framer {
            type Frame = Bytes;
            const SERVER: &'static str = "redis";
            fn decode(buf: &mut BytesMut, max_value: usize) -> Result<Option<Bytes>, String> {
                frame_backend_reply(buf, max_value, $version).map_err(|e| e.to_string())
            }
            fn continues_list(_: &Bytes) -> bool {
                false
            }
            fn failure(frame: &Bytes) -> Option<String> {
                matches!(frame.first(), Some(b'-' | b'!')).then(|| {
                    match parse_backend_reply(frame, $version) {
                        Ok(BackendReply::Error(why)) => why,
                        _ => String::from_utf8_lossy(frame).trim_end().to_string(),
                    }
                })
            }
        }
    };
}

resp_framer!(Resp2, Version::Resp2);
resp_framer!(Resp3, Version::Resp3);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection to {0} closed")]
    Closed(SocketAddr),
    #[error("{0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("{0}: {1}")]
    Protocol(SocketAddr, String),
    #[error("{0}: {1}")]
    Io(SocketAddr, String),
    #[error("{0} refused the connection's setup: {1}")]
    Handshake(SocketAddr, String),
}

type Reply<F> = Result<Vec<<F as Framer>::Frame>, ConnectionError>;

struct Pending<F: Framer> {
    request: Bytes,
    expect: Expect,
    reply: oneshot::Sender<Reply<F>>,
}

/// Most bytes the writer coalesces into one write.
const MAX_BATCH: usize = 256 * 1024;
/// Requests that may wait for the writer before callers are slowed down.
const QUEUE: usize = 4096;

pub struct Connection<F: Framer> {
    addr: SocketAddr,
    queue: mpsc::Sender<Pending<F>>,
    /// Cancelled by whichever task first sees the stream break.
    broken: CancellationToken,
}

impl<F: Framer> Connection<F> {
    pub async fn connect(
        addr: SocketAddr,
        connect_timeout: Duration,
        timeout: Duration,
        max_value: usize,
    ) -> Result<Self, ConnectionError> {
        Self::connect_with(addr, connect_timeout, timeout, max_value, None).await
    }

    /// Like `connect`, over TLS when `tls` is given (the handshake counts
    /// against the connect timeout).
    pub async fn connect_with(
        addr: SocketAddr,
        connect_timeout: Duration,
        timeout: Duration,
        max_value: usize,
        tls: Option<&crate::tls::Connector>,
    ) -> Result<Self, ConnectionError> {
        let connecting = async {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            match tls {
                None => Ok(Stream::Plain(stream)),
                Some(tls) => Ok(Stream::Tls(Box::new(tls.connect(stream).await?))),
            }
        };
        let stream = tokio::time::timeout(connect_timeout, connecting)
            .await
            .map_err(|_| ConnectionError::Timeout(addr, connect_timeout))?
            .map_err(|e: std::io::Error| ConnectionError::Io(addr, e.to_string()))?;
        match stream {
            Stream::Plain(stream) => {
                let (read, write) = stream.into_split();
                Ok(Self::start(addr, read, write, timeout, max_value))
            }
            Stream::Tls(stream) => {
                let (read, write) = tokio::io::split(*stream);
                Ok(Self::start(addr, read, write, timeout, max_value))
            }
        }
    }

    fn start(
        addr: SocketAddr,
        read: impl AsyncRead + Unpin + Send + 'static,
        write: impl AsyncWrite + Unpin + Send + 'static,
        timeout: Duration,
        max_value: usize,
    ) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE);
        let (in_flight, awaiting) = mpsc::unbounded_channel();
        let broken = CancellationToken::new();
        tokio::spawn(write_loop::<F>(
            addr,
            write,
            requests,
            in_flight,
            broken.clone(),
        ));
        tokio::spawn(read_loop::<F>(
            addr,
            read,
            awaiting,
            ReadLimits { max_value, timeout },
            broken.clone(),
        ));
        Self {
            addr,
            queue,
            broken,
        }
    }

    /// False once the server closed or broke the stream; make a new one.
    pub fn is_open(&self) -> bool {
        !self.broken.is_cancelled()
    }

    /// Sends one already-encoded request and waits for its whole reply, or
    /// the connection's failure (which comes within the request timeout).
    pub async fn call(&self, request: Bytes, expect: Expect) -> Reply<F> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                request,
                expect,
                reply,
            })
            .await
            .map_err(|_| ConnectionError::Closed(self.addr))?;
        answer
            .await
            .unwrap_or(Err(ConnectionError::Closed(self.addr)))
    }
}

/// A request written to the server and not yet answered: how its reply
/// ends, its caller, and when it was written.
struct Awaiting<F: Framer> {
    expect: Expect,
    reply: oneshot::Sender<Reply<F>>,
    written: Instant,
}

/// A connection to a server, before it is split into its two halves.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn write_loop<F: Framer>(
    addr: SocketAddr,
    mut write: impl AsyncWrite + Unpin,
    mut requests: mpsc::Receiver<Pending<F>>,
    in_flight: mpsc::UnboundedSender<Awaiting<F>>,
    broken: CancellationToken,
) {
    let mut batch = BytesMut::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            first = requests.recv() => first,
            () = broken.cancelled() => None,
        };
        let Some(first) = first else { break };
        // Let the other tasks of this thread run, and the I/O driver poll once,
        // before writing: clients that became readable together then share one
        // write and one wake-up of the server, as in an event loop that writes
        // when the socket is writable. Without it a worker wrote about two
        // requests at a time under `redis-benchmark -c 50 -P 1`, with it ~25.
        tokio::task::yield_now().await;
        let written = Instant::now();
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            batch.extend_from_slice(&pending.request);
            // Registered before the bytes go out, so the reader always finds it.
            let awaiting = Awaiting {
                expect: pending.expect,
                reply: pending.reply,
                written,
            };
            if in_flight.send(awaiting).is_err() {
                return;
            }
            if batch.len() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        // A server that stops reading blocks this write; the reader's timeout
        // then breaks the connection and ends the wait.
        // flush: TLS holds written bytes until flushed (a no-op on plain TCP).
        let result = tokio::select! {
            result = async { write.write_all(&batch).await?; write.flush().await } => result,
            () = broken.cancelled() => break,
        };
        if let Err(error) = result {
            tracing::warn!(server = F::SERVER, %addr, %error, "write failed");
            broken.cancel();
            break;
        }
        batch.clear();
    }
    // Callers still queued learn at once (their reply channel drops), and new
    // ones are refused; the reader fails those already in flight.
    requests.close();
}

struct ReadLimits {
    /// Largest value a reply may declare.
    max_value: usize,
    /// Longest the oldest unanswered request may wait.
    timeout: Duration,
}

async fn read_loop<F: Framer>(
    addr: SocketAddr,
    mut read: impl AsyncRead + Unpin,
    mut awaiting: mpsc::UnboundedReceiver<Awaiting<F>>,
    limits: ReadLimits,
    broken: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // The request being answered, and its replies so far.
    let mut current: Option<(Awaiting<F>, Vec<F::Frame>)> = None;
    // Set to the deadline of some request at or before the current one, so
    // it fires no later than the current request's: deadlines only grow in
    // FIFO order. When it fires it is moved to the current request's
    // deadline; when idle and elapsed, it is set for the next request.
    let deadline = tokio::time::sleep(limits.timeout);
    tokio::pin!(deadline);
    let failure = 'read: loop {
        loop {
            match F::decode(&mut buf, limits.max_value) {
                Ok(Some(response)) => {
                    if current.is_none() {
                        let Some(next) = awaiting.recv().await else {
                            break 'read ConnectionError::Closed(addr);
                        };
                        current = Some((next, Vec::new()));
                    }
                    answer(&mut current, response);
                }
                Ok(None) => break,
                Err(error) => break 'read ConnectionError::Protocol(addr, error),
            }
        }
        tokio::select! {
            read = read.read_buf(&mut buf) => match read {
                Ok(0) => break ConnectionError::Closed(addr),
                Ok(_) => {}
                Err(error) => break ConnectionError::Io(addr, error.to_string()),
            },
            () = broken.cancelled() => break ConnectionError::Closed(addr),
            // Only while idle: learn of the next request to start its clock.
            next = awaiting.recv(), if current.is_none() => {
                let Some(next) = next else { break ConnectionError::Closed(addr) };
                if deadline.is_elapsed() {
                    deadline.as_mut().reset(next.written + limits.timeout);
                }
                current = Some((next, Vec::new()));
            }
            () = &mut deadline, if current.is_some() => {
                let due = current.as_ref().expect("guarded").0.written + limits.timeout;
                if due <= Instant::now() {
                    break ConnectionError::Timeout(addr, limits.timeout);
                }
                deadline.as_mut().reset(due);
            }
        }
    };
    broken.cancel();
    tracing::warn!(server = F::SERVER, %addr, error = %failure, "connection lost");
    fail_all(failure, current, awaiting).await;
}

/// Adds `response` to the replies of the request being answered, and
/// sends them to its caller once they are all there.
fn answer<F: Framer>(current: &mut Option<(Awaiting<F>, Vec<F::Frame>)>, response: F::Frame) {
    let Some((request, replies)) = current.as_mut() else {
        return;
    };
    let ends_list = !F::continues_list(&response);
    replies.push(response);
    let done = match request.expect {
        Expect::One => true,
        Expect::Count(n) => replies.len() >= n,
        Expect::UntilEnd => ends_list,
    };
    if let Some((request, replies)) = current.take_if(|_| done) {
        // The caller may have given up; its reply is dropped.
        let _ = request.reply.send(Ok(replies));
    }
}

/// The connection is gone: every request still waiting on it gets `failure`.
async fn fail_all<F: Framer>(
    failure: ConnectionError,
    current: Option<(Awaiting<F>, Vec<F::Frame>)>,
    mut awaiting: mpsc::UnboundedReceiver<Awaiting<F>>,
) {
    if let Some((request, _)) = current {
        let _ = request.reply.send(Err(failure.clone()));
    }
    awaiting.close();
    while let Some(request) = awaiting.recv().await {
        let _ = request.reply.send(Err(failure.clone()));
    }
}

/// Every `interval`, resolves each pool's host name again
/// ([`Pool::follow_name`]), for as long as any of the pools exists.
pub fn follow_names<F: Framer>(pools: Vec<std::sync::Weak<Pool<F>>>, interval: Duration) {
    if interval.is_zero() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.tick().await;
        loop {
            every.tick().await;
            let mut alive = false;
            for pool in pools.iter().filter_map(std::sync::Weak::upgrade) {
                alive = true;
                pool.follow_name().await;
            }
            if !alive {
                return;
            }
        }
    });
}

/// A few long-lived pipelined connections to one server, used round-robin
/// and re-opened (with the handshake) when they break. Picking a live
/// connection takes no lock; only reconnecting does.
pub struct Pool<F: Framer> {
    /// Where new connections go: the configured address, or what the
    /// followed name resolved to last.
    addr: arc_swap::ArcSwap<SocketAddr>,
    /// A host name resolved again before every new connection and every
    /// `resolve_interval_seconds` (None: the configuration gave an address).
    follow: Option<String>,
    /// Or what is asked instead of the resolver (Redis Sentinel).
    locate: Option<Arc<dyn Locate>>,
    lanes: Vec<Lane<F>>,
    next: AtomicUsize,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_value: usize,
    /// Sent first on every new connection (redis AUTH/SELECT), with the
    /// number of replies it gets; a reply `F::failure` objects to fails the connection.
    handshake: Option<(Bytes, usize)>,
    tls: Option<crate::tls::Connector>,
}

/// One of a pool's connections: the live one, replaced when it breaks.
struct Lane<F: Framer> {
    current: ArcSwapOption<Connection<F>>,
    reconnecting: tokio::sync::Mutex<()>,
}

/// A byte stream to a server, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Settings for a [`Pool`].
pub struct PoolOptions {
    pub connections: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_value: usize,
    pub handshake: Option<(Bytes, usize)>,
    /// Connect over TLS with this.
    pub tls: Option<crate::tls::Connector>,
    /// The host name the address came from, to follow when it moves.
    pub follow: Option<String>,
    /// Asked for the address instead (Redis Sentinel); `follow` is unused then.
    pub locate: Option<Arc<dyn Locate>>,
}

/// Finds a pool's server when it is not a fixed address or name: asked
/// before every new connection and every `resolve_interval_seconds`.
pub trait Locate: Send + Sync {
    /// The server's address now; `None` when nothing answered.
    fn locate(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<SocketAddr>> + Send + '_>>;
    /// What is followed, for the log.
    fn describe(&self) -> String;
    /// Why requests must not be sent now (a failover under way), if so.
    fn fenced(&self) -> Option<String> {
        None
    }
}

impl<F: Framer> Pool<F> {
    pub fn new(addr: SocketAddr, options: PoolOptions) -> Self {
        // An address written as one has nothing to follow.
        let follow = options.follow.filter(|host| {
            host.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_err()
        });
        Self {
            addr: arc_swap::ArcSwap::from_pointee(addr),
            follow,
            locate: options.locate,
            lanes: (0..options.connections.max(1))
                .map(|_| Lane {
                    current: ArcSwapOption::empty(),
                    reconnecting: tokio::sync::Mutex::new(()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            max_value: options.max_value,
            handshake: options.handshake,
            tls: options.tls,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        **self.addr.load()
    }

    /// Asks the locator (Redis Sentinel) where the server is, or resolves the
    /// followed host name again. When it no longer resolves to
    /// the address in use, new connections go to the first address it does
    /// resolve to: the pool's connections are let go (requests already sent
    /// on them finish) and the change is logged. True if it changed. A name
    /// that does not resolve leaves the address as it is.
    pub async fn follow_name(&self) -> bool {
        if let Some(locate) = &self.locate {
            let current = self.addr();
            let Some(new) = locate.locate().await else {
                return false;
            };
            if new == current {
                return false;
            }
            self.move_to(&locate.describe(), current, new);
            return true;
        }
        let Some(host) = &self.follow else {
            return false;
        };
        let current = self.addr();
        let lookup = tokio::net::lookup_host((host.as_str(), current.port()));
        let resolved: Vec<SocketAddr> = match tokio::time::timeout(self.connect_timeout, lookup)
            .await
        {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(error)) => {
                tracing::debug!(server = F::SERVER, host, %error, "cannot resolve; keeping the last address");
                return false;
            }
            Err(_) => return false,
        };
        let Some(&new) = resolved.first() else {
            return false;
        };
        if resolved.contains(&current) {
            return false;
        }
        self.move_to(host, current, new);
        true
    }

    /// New connections go to `new` (what `followed` names now), and the
    /// open ones are let go.
    fn move_to(&self, followed: &str, current: SocketAddr, new: SocketAddr) {
        tracing::info!(
            server = F::SERVER,
            followed,
            from = %current,
            to = %new,
            "backend address changed: new connections go to the new address"
        );
        self.addr.store(Arc::new(new));
        self.forget_connections();
    }

    /// Lets the open connections go (requests already sent on them finish):
    /// the next request connects anew, asking where first.
    pub fn forget_connections(&self) {
        for lane in &self.lanes {
            lane.current.store(None);
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.lanes
            .iter()
            .filter(|lane| lane.current.load().as_ref().is_some_and(|c| c.is_open()))
            .count()
    }

    /// The most connections this pool keeps.
    pub fn max_connections(&self) -> usize {
        self.lanes.len()
    }

    /// Round-robin over the lanes of the calling connection worker (lanes
    /// w, w + workers, w + 2 workers, ...), so a connection is opened, and its
    /// tasks run, on the worker whose clients use it: no cross-thread wake-ups
    /// per request. Elsewhere, or with fewer lanes than workers, over all.
    fn lane_index(&self) -> usize {
        let n = self.lanes.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        match crate::workers::current_worker() {
            Some((worker, workers)) if workers > 0 && n >= workers => {
                let mine = (n - worker).div_ceil(workers);
                worker + (turn % mine) * workers
            }
            _ => turn % n,
        }
    }

    async fn connection(&self) -> Result<Arc<Connection<F>>, ConnectionError> {
        let lane = &self.lanes[self.lane_index()];
        if let Some(connection) = lane.current.load_full().filter(|c| c.is_open()) {
            return Ok(connection);
        }
        let _reconnecting = lane.reconnecting.lock().await;
        // Someone else may have reconnected while we waited.
        if let Some(connection) = lane.current.load_full().filter(|c| c.is_open()) {
            return Ok(connection);
        }
        self.follow_name().await;
        if self.locate.is_some() && self.addr().port() == 0 {
            return Err(ConnectionError::Io(
                self.addr(),
                "no sentinel named the master's address; check the sentinels and the master name"
                    .into(),
            ));
        }
        let connection = Connection::connect_with(
            self.addr(),
            self.connect_timeout,
            self.request_timeout,
            self.max_value,
            self.tls.as_ref(),
        )
        .await?;
        if let Some((request, count)) = &self.handshake {
            let replies = connection
                .call(request.clone(), Expect::Count(*count))
                .await?;
            if let Some(why) = replies.iter().find_map(F::failure) {
                return Err(ConnectionError::Handshake(self.addr(), why));
            }
        }
        let connection = Arc::new(connection);
        lane.current.store(Some(connection.clone()));
        Ok(connection)
    }

    /// A connection of its own to the pool's server, made as the pool's are
    /// (the name followed, TLS as configured, within the connect timeout),
    /// outside the pipeline: for a long exchange, such as memcached's key
    /// dump, that must not hold up pipelined requests.
    pub async fn dedicated(&self) -> Result<Box<dyn Io>, ConnectionError> {
        self.follow_name().await;
        let addr = self.addr();
        let connecting = async {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(match &self.tls {
                None => Box::new(stream) as Box<dyn Io>,
                Some(tls) => Box::new(tls.connect(stream).await?),
            })
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| ConnectionError::Timeout(addr, self.connect_timeout))?
            .map_err(|e: std::io::Error| ConnectionError::Io(addr, e.to_string()))
    }

    /// What every new connection sends first (redis HELLO/AUTH/SELECT), and
    /// how many replies it gets.
    pub fn handshake(&self) -> Option<&(Bytes, usize)> {
        self.handshake.as_ref()
    }

    /// How long a reply may take (the backend's `request_timeout_ms`).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends one encoded request on a pooled connection and waits for its replies.
    pub async fn call(&self, request: Bytes, expect: Expect) -> Reply<F> {
        self.call_telling_if_sent(request, expect)
            .await
            .map_err(|(error, _)| error)
    }

    /// Like `call`, and on failure whether the request may have reached the
    /// server (false: no connection could be had, so it is safe to send it
    /// elsewhere; true: it was written, or may have been, before the failure).
    pub async fn call_telling_if_sent(
        &self,
        request: Bytes,
        expect: Expect,
    ) -> Result<Vec<F::Frame>, (ConnectionError, bool)> {
        if let Some(why) = self.locate.as_ref().and_then(|locate| locate.fenced()) {
            return Err((ConnectionError::Io(self.addr(), why), false));
        }
        let connection = self.connection().await.map_err(|error| (error, false))?;
        connection
            .call(request, expect)
            .await
            .map_err(|error| (error, true))
    }
}
