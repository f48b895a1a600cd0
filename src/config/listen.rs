//! `[listen]` and `[tls]`: where Keyway listens and how.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// `[tls]`: the certificate and key the listeners in `listeners` present
/// (PEM files, read at start and on every reload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Which listeners speak TLS (only TLS): "memcache", "resp", "admin", "sentinel".
    pub listeners: Vec<ListenerName>,
    /// CA certificates (PEM): every TLS listener then requires a client
    /// certificate issued by one of them (mutual TLS, as memcached's
    /// `ssl_verify_mode=2` and redis's `tls-auth-clients yes`); none, one
    /// from another CA, or an expired one fails the handshake. Read at
    /// start and on every reload, as the server certificate.
    pub client_ca_file: Option<PathBuf>,
    /// `"cn"`: a client certificate whose subject common name is a
    /// `[[auth.users]]` name authenticates the connection as that user, with
    /// no AUTH (as Valkey's `tls-auth-clients-user CN`). `"none"` (the
    /// default): the certificate only admits the connection.
    #[serde(default)]
    pub client_user: ClientUser,
}

/// `[tls] client_user`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientUser {
    #[default]
    None,
    Cn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerName {
    Memcache,
    Resp,
    Admin,
    Sentinel,
}

impl ListenerName {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerName::Memcache => "memcache",
            ListenerName::Resp => "resp",
            ListenerName::Admin => "admin",
            ListenerName::Sentinel => "sentinel",
        }
    }
}

/// Listener addresses; an omitted listener is off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub memcache: Option<String>,
    pub resp: Option<String>,
    /// HTTP: `/metrics`, `/healthz`, `/readyz`, `/config`.
    pub admin: Option<String>,
    /// A Redis Sentinel front: answers Sentinel clients (redis-py's
    /// `Sentinel`, django-redis's SentinelClient) with the RESP listener's
    /// address as the master of `[sentinel] master_name`.
    pub sentinel: Option<String>,
    /// A file holding the bearer token `/metrics` and `/config` then require
    /// (`Authorization: Bearer <token>`); needed when `admin` is not on
    /// loopback. Read at start and on every reload.
    pub admin_token_file: Option<PathBuf>,
    /// Unix socket paths: memcached text has no authentication, so a socket
    /// whose file mode admits only Keyway's clients is how to guard it.
    pub memcache_socket: Option<PathBuf>,
    pub resp_socket: Option<PathBuf>,
    /// The sockets' file mode, octal as memcached's `-a` and redis's
    /// `unixsocketperm` (memcached's default: only the owner connects).
    #[serde(default)]
    pub socket_mode: FileMode,
}

/// A Unix file mode, written in octal (`"0660"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Default for FileMode {
    fn default() -> Self {
        FileMode(0o700)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match u32::from_str_radix(&text, 8) {
            Ok(mode) if mode <= 0o777 => Ok(FileMode(mode)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a file mode; write it in octal as a string, e.g. \"0660\""
            ))),
        }
    }
}

/// `[sentinel]`: the master the sentinel listener describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sentinel {
    /// The service name clients ask for (kolla-ansible: "kolla").
    #[serde(default = "default_master_name")]
    pub master_name: String,
    /// `host:port` handed out as the master's address instead of the RESP
    /// listener's own (containers, NAT, a listener on every interface).
    pub announce: Option<String>,
    /// What the sentinel listener asks of a client, decided apart from the
    /// RESP listener as a Sentinel's own `requirepass` is. See [`SentinelAuth`].
    #[serde(default)]
    pub auth: SentinelAuth,
}

impl Default for Sentinel {
    fn default() -> Self {
        Self {
            master_name: default_master_name(),
            announce: None,
            auth: SentinelAuth::default(),
        }
    }
}

/// `[sentinel] auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentinelAuth {
    /// No credential needed, as a Sentinel whose `requirepass` is empty
    /// (kolla-ansible's template since 2026-04: `SENTINEL_KWARGS` gone,
    /// `PASSWORD` given to the master only). An AUTH that is sent anyway
    /// (the older template) is checked against `[[auth.users]]` as on the
    /// RESP listener. The listener holds no keys: it reveals the master's
    /// address (which still asks for the password) and a Sentinel's own
    /// status (version, uptime, client count), never a key or a value, and
    /// holds every client to redis's pre-authentication request limits.
    #[default]
    Open,
    /// `[[auth.users]]` as on the RESP listener: AUTH before anything else.
    Users,
}

fn default_master_name() -> String {
    "mymaster".into()
}
