//! Where clients connect: the configured endpoints (TCP addresses and Unix
//! socket paths), binding them, and accepting from them.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};

use crate::config::{Config, FileMode, ListenerName};

use super::StartError;

/// Which protocol an endpoint speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protocol {
    Memcache,
    Resp,
    Admin,
    /// RESP, answering as a Redis Sentinel.
    Sentinel,
}

impl Protocol {
    pub fn listener(self) -> ListenerName {
        match self {
            Protocol::Memcache => ListenerName::Memcache,
            Protocol::Resp => ListenerName::Resp,
            Protocol::Admin => ListenerName::Admin,
            Protocol::Sentinel => ListenerName::Sentinel,
        }
    }

    /// What a client over the connection cap is told, in its protocol's words.
    pub fn refusal(self) -> &'static [u8] {
        match self {
            Protocol::Memcache => b"SERVER_ERROR Too many open connections\r\n",
            _ => b"-ERR max number of clients reached\r\n",
        }
    }
}

/// One configurable listener: `[listen]`'s fields, in slot order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Endpoint {
    Memcache,
    Resp,
    Admin,
    MemcacheSocket,
    RespSocket,
    Sentinel,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Memcache,
        Endpoint::Resp,
        Endpoint::Admin,
        Endpoint::MemcacheSocket,
        Endpoint::RespSocket,
        Endpoint::Sentinel,
    ];

    pub fn protocol(self) -> Protocol {
        match self {
            Endpoint::Memcache | Endpoint::MemcacheSocket => Protocol::Memcache,
            Endpoint::Resp | Endpoint::RespSocket => Protocol::Resp,
            Endpoint::Admin => Protocol::Admin,
            Endpoint::Sentinel => Protocol::Sentinel,
        }
    }

    pub fn field(self) -> &'static str {
        match self {
            Endpoint::Memcache => "listen.memcache",
            Endpoint::Resp => "listen.resp",
            Endpoint::Admin => "listen.admin",
            Endpoint::MemcacheSocket => "listen.memcache_socket",
            Endpoint::RespSocket => "listen.resp_socket",
            Endpoint::Sentinel => "listen.sentinel",
        }
    }

    /// Where `config` wants this endpoint, if anywhere.
    pub fn configured(self, config: &Config) -> Option<Spec> {
        let listen = &config.listen;
        let tcp = |addr: &Option<String>| addr.clone().map(Spec::Tcp);
        let unix = |path: &Option<PathBuf>| {
            path.clone()
                .map(|path| Spec::Unix(path, listen.socket_mode))
        };
        match self {
            Endpoint::Memcache => tcp(&listen.memcache),
            Endpoint::Resp => tcp(&listen.resp),
            Endpoint::Admin => tcp(&listen.admin),
            Endpoint::MemcacheSocket => unix(&listen.memcache_socket),
            Endpoint::RespSocket => unix(&listen.resp_socket),
            Endpoint::Sentinel => tcp(&listen.sentinel),
        }
    }
}

/// A listener's configured form; a reload rebinds an endpoint whose spec changed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Spec {
    Tcp(String),
    Unix(PathBuf, FileMode),
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

/// A Unix socket listener that removes its file when dropped, unless the
/// file has since been replaced (by a reload binding the same path anew).
pub struct UnixSocket {
    listener: UnixListener,
    path: Arc<Path>,
    /// (device, inode) of the socket file this listener created.
    identity: (u64, u64),
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Listener {
    /// Binds `spec`. `replacing` is the spec this endpoint runs now, if any:
    /// a reload that keeps a socket's path (to change its mode) replaces
    /// Keyway's own live socket file, which is otherwise refused.
    pub async fn bind(
        endpoint: Endpoint,
        spec: &Spec,
        replacing: Option<&Spec>,
    ) -> Result<Self, StartError> {
        let field = endpoint.field();
        let listener = match spec {
            Spec::Tcp(addr) => {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| StartError::Bind {
                            field,
                            addr: addr.clone(),
                            source,
                        })?;
                Listener::Tcp(listener)
            }
            Spec::Unix(path, mode) => {
                let own = matches!(replacing, Some(Spec::Unix(running, _)) if running == path);
                Listener::Unix(
                    bind_unix(path, *mode, own).map_err(|source| StartError::Bind {
                        field,
                        addr: path.display().to_string(),
                        source,
                    })?,
                )
            }
        };
        tracing::info!(listener = field, addr = %listener.describe(), "listening");
        Ok(listener)
    }

    /// The bound TCP address (port 0 resolved).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string()),
            Listener::Unix(socket) => socket.path.display().to_string(),
        }
    }

    pub async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok(Accepted::Tcp(stream, peer))
            }
            Listener::Unix(socket) => {
                let (stream, _) = socket.listener.accept().await?;
                Ok(Accepted::Unix(stream, socket.path.clone()))
            }
        }
    }

    /// A connection the kernel has already completed, taken without waiting:
    /// `None` once the queue is empty. A moved listener takes these before it
    /// closes, since closing would reset clients whose connect had succeeded.
    /// The accept goes straight to the socket, not through the reactor's
    /// readiness, which may not have seen the last arrivals yet.
    pub fn accept_queued(&self) -> Option<Accepted> {
        let socket = match self {
            Listener::Tcp(listener) => socket2::SockRef::from(listener).accept(),
            Listener::Unix(socket) => socket2::SockRef::from(&socket.listener).accept(),
        };
        let (socket, peer) = socket.ok()?;
        socket.set_nonblocking(true).ok()?;
        match self {
            Listener::Tcp(_) => {
                let stream = tokio::net::TcpStream::from_std(socket.into()).ok()?;
                Some(Accepted::Tcp(stream, peer.as_socket()?))
            }
            Listener::Unix(listening) => {
                let stream = tokio::net::UnixStream::from_std(socket.into()).ok()?;
                Some(Accepted::Unix(stream, listening.path.clone()))
            }
        }
    }

    /// The TCP listener, for the admin HTTP server (which has no Unix socket).
    pub fn into_tcp(self) -> Option<TcpListener> {
        match self {
            Listener::Tcp(listener) => Some(listener),
            Listener::Unix(_) => None,
        }
    }
}

/// Binds a Unix stream socket at `path` with file mode `mode`. The mode is
/// set before `listen`, so no client can connect while the file still has
/// the umask's permissions. A socket file left by a process that is gone
/// (kill -9), or Keyway's own when `own`, is replaced; another live one, or
/// any other file, is an error.
fn bind_unix(path: &Path, mode: FileMode, own: bool) -> std::io::Result<UnixSocket> {
    use std::io::{Error, ErrorKind};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "the path exists and is not a socket; remove it or choose another path",
            ));
        }
        if !own && someone_listens(path) {
            return Err(Error::new(
                ErrorKind::AddrInUse,
                "another process is listening on this socket; stop it or choose another path",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    let created = (|| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode.0))?;
        let meta = std::fs::symlink_metadata(path)?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        Ok::<_, Error>((meta.dev(), meta.ino()))
    })();
    let identity = match created {
        Ok(identity) => identity,
        Err(error) => {
            let _ = std::fs::remove_file(path);
            return Err(error);
        }
    };
    let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(socket))?;
    Ok(UnixSocket {
        listener,
        path: path.into(),
        identity,
    })
}

/// Whether a process accepts connections on the socket at `path`. The
/// connect does not block: a listener whose backlog is full (which would
/// block a plain connect) is live too.
fn someone_listens(path: &Path) -> bool {
    let Ok(socket) = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
    else {
        return false;
    };
    if socket.set_nonblocking(true).is_err() {
        return false;
    }
    match socket2::SockAddr::unix(path).and_then(|addr| socket.connect(&addr)) {
        Ok(()) => true,
        Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// An accepted connection, before it is handed to a worker.
pub enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream, Arc<Path>),
}

/// An accepted connection as a std socket: it crosses to a worker's runtime
/// this way, to be registered with that worker's reactor.
pub enum Handoff {
    Tcp(std::net::TcpStream, SocketAddr),
    Unix(std::os::unix::net::UnixStream, Arc<Path>),
}

impl Accepted {
    /// Tells a client over the connection cap so, and closes it.
    pub async fn refuse(self, protocol: Protocol) {
        let _ = match self {
            Accepted::Tcp(mut stream, _) => stream.write_all(protocol.refusal()).await,
            Accepted::Unix(mut stream, _) => stream.write_all(protocol.refusal()).await,
        };
    }

    pub fn into_handoff(self) -> std::io::Result<Handoff> {
        Ok(match self {
            Accepted::Tcp(stream, peer) => Handoff::Tcp(stream.into_std()?, peer),
            Accepted::Unix(stream, path) => Handoff::Unix(stream.into_std()?, path),
        })
    }
}
