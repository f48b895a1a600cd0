//! Accepting: a listener's loop under the connection cap, the handoff of
//! each connection to a worker, the TLS handshake (and client
//! certificate), and the protocol session that serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::listener::{Accepted, Handoff, Listener, Protocol};
use super::{serve, TLS_HANDSHAKE};
use crate::frontend::memcache::MemcacheSession;
use crate::frontend::resp::RespSession;
use crate::session::{Current, Peer, Shared};
use crate::workers::Workers;

pub(super) struct AcceptContext {
    pub(super) current: Current,
    pub(super) permits: Arc<Semaphore>,
    /// Shutdown of the whole server: connections drain.
    pub(super) shutdown: CancellationToken,
    /// This listener only (moved by a reload): its connections stay.
    pub(super) stop: CancellationToken,
    pub(super) tracker: TaskTracker,
    pub(super) workers: Arc<Workers>,
}

/// A shutdown token for each worker's connections, a child of the
/// server's: a connection asks its token on every turn, and a token every
/// worker's connections asked would be one lock all cores contend for.
fn per_worker(shutdown: &CancellationToken, workers: &Workers) -> Vec<CancellationToken> {
    (0..workers.count())
        .map(|_| shutdown.child_token())
        .collect()
}

pub(super) async fn accept_loop(listener: Listener, ctx: AcceptContext, protocol: Protocol) {
    let AcceptContext {
        current,
        permits,
        shutdown,
        stop,
        tracker,
        workers,
    } = ctx;
    let worker_shutdown = per_worker(&shutdown, &workers);
    let hand_off = |accepted: Accepted| {
        let shared = current.load_full();
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.stats.rejected_connections.add(1);
            tracker.spawn(accepted.refuse(protocol));
            return;
        };
        let Ok(handoff) = accepted.into_handoff() else {
            return;
        };
        let (worker, runtime) = workers.next();
        let shutdown = worker_shutdown[worker].clone();
        let current = current.clone();
        shared.stats.current_connections.add(1);
        shared.stats.total_connections.add(1);
        tracker.spawn_on(
            async move {
                serve_handoff(handoff, protocol, shared.clone(), current, shutdown).await;
                shared.stats.current_connections.sub(1);
                drop(permit);
            },
            runtime,
        );
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => {
                // Moved by a reload: whoever already connected is served.
                while let Some(accepted) = listener.accept_queued() {
                    hand_off(accepted);
                }
                return;
            }
        };
        match accepted {
            Ok(accepted) => hand_off(accepted),
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves an accepted connection on the worker it was handed to.
async fn serve_handoff(
    handoff: Handoff,
    protocol: Protocol,
    shared: Arc<Shared>,
    current: Current,
    shutdown: CancellationToken,
) {
    match handoff {
        Handoff::Tcp(stream, peer) => {
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let tls = shared.tls_for(protocol.listener()).cloned();
            let client = Client {
                protocol,
                peer: Peer::Tcp(peer),
                shared,
                current,
                shutdown,
            };
            match tls {
                None => client.serve(stream).await,
                // Boxed: the handshake and the TLS stream take over 2 KiB,
                // which plain connections would otherwise carry too.
                Some(acceptor) => Box::pin(client.serve_tls(stream, acceptor, peer)).await,
            }
        }
        // Unix sockets are guarded by their file mode; `[tls]` names TCP listeners.
        Handoff::Unix(stream, path) => {
            let Ok(stream) = tokio::net::UnixStream::from_std(stream) else {
                return;
            };
            let client = Client {
                protocol,
                peer: Peer::Unix(path),
                shared,
                current,
                shutdown,
            };
            client.serve(stream).await;
        }
    }
}

/// An accepted client, about to be served over TCP, TLS or a Unix socket.
struct Client {
    protocol: Protocol,
    peer: Peer,
    shared: Arc<Shared>,
    current: Current,
    shutdown: CancellationToken,
}

impl Client {
    async fn serve_tls(
        self,
        stream: tokio::net::TcpStream,
        acceptor: crate::tls::Acceptor,
        peer: SocketAddr,
    ) {
        match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let certificate = crate::tls::client_common_name(&stream);
                self.serve_certified(stream, certificate).await
            }
            // Info, not debug, when client certificates are required: a
            // refused certificate is the operator's to see.
            Ok(Err(error)) if self.requires_client_certificates() => {
                tracing::info!(%peer, %error, "TLS handshake failed")
            }
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    fn requires_client_certificates(&self) -> bool {
        self.shared
            .config
            .requires_client_certificates(self.protocol.listener())
    }

    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        self.serve_certified(stream, None).await
    }

    /// Serves a connection whose client presented a certificate with this
    /// common name (verified against `[tls] client_ca_file`).
    async fn serve_certified<S>(self, stream: S, certificate: Option<String>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        let origin = crate::django_sessions::Origin {
            listener: self.protocol.listener().as_str(),
            client: self.peer.to_string(),
        };
        crate::django_sessions::ORIGIN
            .scope(origin, self.serve_as_protocol(stream, certificate))
            .await;
    }

    async fn serve_as_protocol<S>(self, stream: S, certificate: Option<String>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        match self.protocol {
            Protocol::Memcache => {
                let session = MemcacheSession::new(self.shared).certified(certificate);
                serve::serve(stream, session, self.current, self.shutdown).await;
            }
            Protocol::Sentinel => {
                let session = RespSession::sentinel(self.shared, self.peer).certified(certificate);
                serve::serve(stream, session, self.current, self.shutdown).await;
            }
            _ => {
                let session = RespSession::new(self.shared, self.peer).certified(certificate);
                serve::serve(stream, session, self.current, self.shutdown).await;
            }
        }
    }
}
