//! One task per client connection: read what is available, let the frontend
//! answer every complete request in it (pipelining), write all replies at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::session::request_buffers::{Holding, PASS_PATIENCE};
use crate::session::{Current, Flow, Session};

const READ_CHUNK: usize = 16 * 1024;
/// Buffers grown past this by a large request or reply are given back once
/// it is done, so an idle connection holds little memory.
const KEEP_CAPACITY: usize = 4 * READ_CHUNK;

/// A reload swapped in a new generation: requests read from now on run on
/// it. (A pointer comparison when nothing changed.)
fn adopt_latest<S: Session>(session: &mut S, current: &Current) {
    let latest = current.load();
    let shared = session.shared_mut();
    if !Arc::ptr_eq(&latest, shared) {
        *shared = Arc::clone(&latest);
    }
}

/// Empties the written output, and gives back buffers that a large request
/// or reply grew, so an idle connection holds little memory.
fn give_back(input: &mut BytesMut, output: &mut BytesMut) {
    output.clear();
    if output.capacity() > KEEP_CAPACITY {
        *output = BytesMut::new();
    }
    if input.is_empty() && input.capacity() > KEEP_CAPACITY {
        *input = BytesMut::with_capacity(READ_CHUNK / 4);
    }
}

/// Not an `async fn`: one moves its arguments into locals of its body and
/// its future keeps both (rust-lang/rust#62958), the session twice in every
/// connection's task. The block uses them where they were captured.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn serve<S: Session, T: AsyncRead + AsyncWrite + Unpin + Send>(
    mut stream: T,
    mut session: S,
    current: Current,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    async move {
        // The same counters in every generation.
        let stats = session.shared_mut().stats.clone();
        // Small until used: ten thousand idle connections hold 40 MiB of
        // buffers, not 320. The input grows by READ_CHUNK under load; the output
        // is allocated by the first reply.
        let mut input = BytesMut::with_capacity(READ_CHUNK / 4);
        let mut output = BytesMut::new();
        // limits.idle_timeout_seconds: one timer per connection, re-armed only
        // when it fires while the client was active meanwhile, so reading a
        // request never touches the timer wheel.
        let idle_limit = session.shared_mut().config.limits.idle_timeout();
        let mut last_active = Instant::now();
        let idle = tokio::time::sleep(idle_limit.unwrap_or(Duration::MAX / 4));
        tokio::pin!(idle);
        // Requests already read but left for the next turn (the turn stopped at
        // limits.max_pipeline or limits.max_output_buffer).
        let mut pending = false;
        // This connection's share of limits.request_buffers.
        let mut holding = Holding::default();
        // CLIENT KILL from another connection (RESP clients only).
        let killed = session.killed();
        // Set when a turn waits as long as the client asked (a blocking pop).
        let long_waits = session.long_waits();
        // Waited on from one future each for the connection's life: a
        // `cancelled()` made per read would join and leave the token's waiter
        // list (a lock each way) on every request. The shutdown token is
        // this worker's (accept.rs), so its lock is not shared across cores.
        let shut_down = shutdown.cancelled();
        let kill = async {
            match &killed {
                Some(killed) => killed.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(shut_down, kill);
        loop {
            if !pending {
                // Every request read has been answered.
                if shutdown.is_cancelled() {
                    break;
                }
                let budget = session
                    .shared_mut()
                    .config
                    .limits
                    .request_buffers
                    .as_usize();
                if holding.must_wait(budget) {
                    tokio::select! {
                        () = holding.wait(budget) => continue,
                        () = &mut shut_down => break,
                    }
                }
                if input.capacity() - input.len() < READ_CHUNK / 4 {
                    input.reserve(READ_CHUNK);
                }
                // The pass holder must keep sending, or let another finish.
                let patience = async {
                    if holding.has_pass() {
                        tokio::time::sleep(PASS_PATIENCE).await
                    } else {
                        std::future::pending().await
                    }
                };
                // Only the wait for new bytes is cancelled on shutdown: requests
                // already read are answered before the connection closes.
                let read = tokio::select! {
                    // In this order, so that a plain client's usual wake (its
                    // next request is there) polls nothing else. A client that
                    // never stops sending is still stopped on shutdown or kill:
                    // both are asked between turns.
                    biased;
                    // Pub/sub messages, MONITOR's lines and invalidations,
                    // between requests.
                    pushed = session.pushed(&mut output), if session.listens() => {
                        // A reload may have taken away what the client listens to.
                        adopt_latest(&mut session, &current);
                        let timeout = session.shared_mut().config.limits.client_write_timeout();
                        if !pushed
                            || !session.still_entitled()
                            || !write_all(&mut stream, &output, timeout).await
                        {
                            break;
                        }
                        stats.bytes_written.add(output.len() as u64);
                        give_back(&mut input, &mut output);
                        continue;
                    }
                    read = stream.read_buf(&mut input) => read,
                    () = &mut shut_down => break,
                    () = &mut kill => break,
                    () = patience => {
                        tracing::info!(
                            patience_seconds = PASS_PATIENCE.as_secs(),
                            "client disconnected: over limits.request_buffers, it held the one \
                             connection allowed to finish a large request and sent nothing"
                        );
                        break;
                    }
                    () = &mut idle, if idle_limit.is_some() => {
                        let mut due = last_active + idle_limit.unwrap_or_default();
                        if Instant::now() >= due {
                            // A subscriber waits on purpose (redis exempts it too).
                            if !session.listens() {
                                break;
                            }
                            last_active = Instant::now();
                            due = last_active + idle_limit.unwrap_or_default();
                        }
                        idle.as_mut().reset(due.into());
                        continue;
                    }
                };
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => stats.bytes_read.add(n as u64),
                }
                if idle_limit.is_some() {
                    last_active = Instant::now();
                }
            }
            adopt_latest(&mut session, &current);
            let write_timeout = session.shared_mut().config.limits.client_write_timeout();
            let Some((flow, sent_meanwhile)) = turn(
                &mut session,
                &mut stream,
                &mut input,
                &mut output,
                &long_waits,
            )
            .await
            else {
                break;
            };
            if !output.is_empty() {
                if !write_all(&mut stream, &output, write_timeout).await {
                    break;
                }
                stats.bytes_written.add(output.len() as u64);
            }
            give_back(&mut input, &mut output);
            if killed.as_ref().is_some_and(CancellationToken::is_cancelled) {
                break;
            }
            holding.update(if input.is_empty() {
                0
            } else {
                input.capacity()
            });
            match flow {
                Flow::Close => break,
                Flow::Continue => pending = sent_meanwhile,
                Flow::Yield => pending = true,
            }
        }
        let _ = stream.shutdown().await;
    }
}

/// One turn: the session answers the requests in `input`. Whether the
/// client sent more meanwhile (during a long wait: appended to `input`, to
/// be answered before reading more); `None` when it left during one.
async fn turn<S: Session, T: AsyncRead + Unpin>(
    session: &mut S,
    stream: &mut T,
    input: &mut BytesMut,
    output: &mut BytesMut,
    long_waits: &Option<Arc<AtomicBool>>,
) -> Option<(Flow, bool)> {
    let mut early = BytesMut::new();
    // Boxed: the future of a turn is over 5 KiB (every backend's request
    // future is in it), and inline it would sit in every connection's
    // task, idle or not. One allocation per turn instead.
    let flow = {
        let process = Box::pin(session.process(input, output));
        tokio::select! {
            biased;
            flow = process => flow,
            () = client_left(long_waits, stream, &mut early) => return None,
        }
    };
    if let Some(flag) = long_waits {
        flag.store(false, Ordering::Relaxed);
    }
    input.extend_from_slice(&early);
    Some((flow, !early.is_empty()))
}

/// Resolves when the client closes its connection during a turn that
/// waits as long as it asked (`Session::long_waits`); what it sends
/// meanwhile is kept in `early` (up to READ_CHUNK, then left in the socket).
/// Never resolves otherwise. The flag needs no waker: the turn sets it while
/// it is polled, just before this future is (`biased`), and a turn that
/// does not wait long costs one load, not a read.
async fn client_left<T: AsyncRead + Unpin>(
    long_waits: &Option<Arc<AtomicBool>>,
    stream: &mut T,
    early: &mut BytesMut,
) {
    let Some(flag) = long_waits else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|_| match flag.load(Ordering::Relaxed) {
        true => Poll::Ready(()),
        false => Poll::Pending,
    })
    .await;
    while early.len() < READ_CHUNK {
        early.reserve(READ_CHUNK / 4);
        match stream.read_buf(early).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending().await
}

/// Writes (and flushes: TLS holds bytes until then) `output`; false if the
/// client is gone or has not read for `timeout` (it would otherwise hold its
/// replies in memory forever). The timer is only armed when the socket
/// cannot take everything at once, so a client that keeps up costs none.
async fn write_all<T: AsyncWrite + Unpin>(
    stream: &mut T,
    output: &[u8],
    timeout: Duration,
) -> bool {
    let written = match stream.write(output).now_or_never() {
        Some(Ok(n)) => n,
        Some(Err(_)) => return false,
        None => 0,
    };
    if written == output.len() {
        if let Some(flushed) = stream.flush().now_or_never() {
            return flushed.is_ok();
        }
    }
    let rest = async {
        stream.write_all(&output[written..]).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, rest).await {
        Ok(result) => result.is_ok(),
        Err(_) => {
            tracing::info!(
                timeout_seconds = timeout.as_secs(),
                "client disconnected: it read none of its replies within limits.client_write_timeout_seconds"
            );
            false
        }
    }
}
