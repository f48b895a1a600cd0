//! `[backends.*]`: what a backend is built from, with its defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackendUrl, Dialect, Size};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `memory://`, `memcached://host:port[:weight],...`, `redis://...`, `sqlite://path`,
    /// `postgres://...` or `mysql://...`.
    pub url: String,
    /// Memory backends: the most bytes items may take before eviction.
    #[serde(default = "default_capacity")]
    pub capacity: Size,
    /// Connections per server (memcached) or in the pool (SQL); the
    /// backend's own default when omitted.
    pub connections: Option<usize>,
    /// Milliseconds to wait for a connection to a server before failing the request.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Milliseconds a request may take before the client gets an error.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// SQL backends: the table items live in (created when missing).
    #[serde(default = "default_table")]
    pub table: String,
    /// memcached and redis backends: connect over TLS (`rediss://` implies it).
    /// SQL backends use their URL's own parameters (`sslmode=`, `ssl-mode=`).
    #[serde(default)]
    pub tls: bool,
    /// The CA certificates (PEM) backend servers are verified against;
    /// the Mozilla roots when omitted.
    pub tls_ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry; the host of each
    /// server address when omitted.
    pub tls_server_name: Option<String>,
    /// A client certificate chain and its key (PEM) Keyway presents to the
    /// server: for a memcached `-Z` with `ssl_verify_mode=2` or a redis
    /// with `tls-auth-clients yes`. Both or neither.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// memcached and redis backends: seconds between resolving each
    /// server's host name again (a name that moves is followed; every new
    /// connection resolves it too); 0 only on reconnect.
    #[serde(default = "default_resolve_interval_seconds")]
    pub resolve_interval_seconds: u64,
    /// memcached backends: which server holds a key, as the client library
    /// that filled the pool decides it (docs/configuration.md "Putting Keyway in front of
    /// an existing pool").
    #[serde(default)]
    pub placement: Placement,
    /// SQL backends: how often the change log is read while a per-host tier
    /// (a write-through policy's memory cache) sits in front of the backend.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// SQL backends: values are encrypted at rest with the keys in this file
    /// (`<id>:<64 hex digits>` per line; the first seals new writes).
    pub encryption_key_file: Option<PathBuf>,
}

impl BackendConfig {
    /// A backend at `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            capacity: default_capacity(),
            connections: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            table: default_table(),
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
            tls_cert_file: None,
            tls_key_file: None,
            poll_interval_ms: default_poll_interval_ms(),
            placement: Placement::default(),
            resolve_interval_seconds: default_resolve_interval_seconds(),
            encryption_key_file: None,
        }
    }

    /// How often server host names are resolved again (zero: never on a timer).
    pub fn resolve_interval(&self) -> Duration {
        Duration::from_secs(self.resolve_interval_seconds)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Whether connections to this backend use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls || self.url.starts_with("rediss://")
    }

    /// The TLS connector for a server at `host` (`tls_server_name` wins).
    pub fn tls_connector(&self, host: &str) -> Result<crate::tls::Connector, String> {
        let name = self.tls_server_name.as_deref().unwrap_or(host);
        let client = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err("set both tls_cert_file and tls_key_file, or neither".into()),
        };
        crate::tls::Connector::new(self.tls_ca_file.as_deref(), name, client)
    }

    /// SQL backends are durable: their routes are protected from flushes
    /// unless a route says otherwise.
    pub fn is_durable(&self) -> bool {
        Dialect::of_url(&self.url).is_some()
    }

    /// The URL, parsed ([`BackendUrl`]).
    pub fn endpoint(&self) -> Result<BackendUrl, String> {
        BackendUrl::parse(&self.url)
    }
}

/// How a memcached pool's client library places keys on its servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Ketama (md5), as libmemcached's ketama and twemproxy.
    #[default]
    Ketama,
    /// pymemcache's HashClient (Django's PyMemcacheCache with a list LOCATION).
    Pymemcache,
    /// libmemcached's defaults (Django's PyLibMCCache without behaviors).
    Pylibmc,
    /// libmemcached's unweighted ketama (pylibmc's `ketama` behavior).
    PylibmcKetama,
    /// python-memcached's crc32 buckets (Django's MemcachedCache).
    PythonMemcached,
}

fn default_capacity() -> Size {
    Size(256 * 1024 * 1024)
}

fn default_connect_timeout_ms() -> u64 {
    1000
}

fn default_request_timeout_ms() -> u64 {
    2000
}

fn default_resolve_interval_seconds() -> u64 {
    30
}

fn default_poll_interval_ms() -> u64 {
    20
}

fn default_table() -> String {
    "keyway_items".to_string()
}

/// `url` with the password of its user info (`user:password@`) and any
/// `password=` query parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_string(),
    };
    let mut shown = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}
