//! Configuration: the TOML file's shape, its defaults, and `validate()`, whose
//! messages name the offending field (`routes[2].backend: no backend named "sesions"`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

mod auth;
mod topology;
pub mod url;
mod validate;
pub use auth::{Auth, Secret, UserConfig, Users};
pub use topology::{url_is_per_host, SAMPLE_SESSION_KEY};
pub use url::{BackendUrl, Dialect, MemcachedServer, RedisUrl};

/// The configuration Keyway runs with when given none: both listeners on
/// loopback, every key in one memory store.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../deploy/config/default.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// Named policies over backends (or other policies): tiers, migrations.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Users RESP clients must authenticate as (none: no AUTH needed).
    #[serde(default)]
    pub auth: Auth,
    /// TLS on the listeners it names.
    pub tls: Option<Tls>,
}

/// `[tls]`: the certificate and key the listeners in `listeners` present
/// (PEM files, read at start and on every reload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Which listeners speak TLS (only TLS): "memcache", "resp", "admin".
    pub listeners: Vec<ListenerName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerName {
    Memcache,
    Resp,
    Admin,
}

/// How a route's keys are spread over several members (backends or other
/// policies, by name). README's "Routing policies" gives each one's exact
/// read, write, delete, TTL and error semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Django's `cached_db` at the proxy: writes commit to `durable` first,
    /// then reach `cache`; reads come from `cache`, refilled from `durable`.
    WriteThrough {
        cache: String,
        durable: String,
        /// How the cache learns of other Keyways' writes to `durable`:
        /// `"watch"` (read the SQL store's change log) or `"none"` (only
        /// this Keyway writes the store).
        #[serde(default)]
        coherence: Coherence,
        /// The longest a cached value may lag a write another Keyway has
        /// acknowledged; past it, reads skip the cache.
        #[serde(default = "default_max_staleness_ms")]
        max_staleness_ms: u64,
    },
    /// Moving a live store: writes go to `to`, deletes to both, reads try
    /// `to` then `from`, copying what they find with its remaining TTL.
    Migrate {
        from: String,
        to: String,
        /// `"watch"`: a per-host `to` over a shared `from` is refused (other
        /// Keyways' deletes would not reach this host's copies); `"none"`:
        /// only this Keyway uses `from`.
        #[serde(default)]
        coherence: Coherence,
    },
    /// Ordered members: requests go to the first one that is up.
    Failover {
        members: Vec<String>,
        /// Consecutive failures (errors, timeouts) that mark a member down.
        #[serde(default = "default_failures_to_mark_down")]
        failures_to_mark_down: u32,
        /// How often a down member is probed to bring it back.
        #[serde(default = "default_probe_interval_ms")]
        probe_interval_ms: u64,
        /// Longest TTL a set gets when it lands on a fallback member
        /// (mcrouter's failover expiry); no cap when omitted.
        fallback_ttl_seconds: Option<u64>,
    },
    /// Serve from `primary`; repeat a share of requests on `shadow` in the
    /// background and count where its answers differ.
    Shadow {
        primary: String,
        shadow: String,
        /// Share of requests mirrored, 0.0 to 1.0.
        #[serde(default = "default_fraction")]
        fraction: f64,
        /// Mirror writes only (reads are then served and not compared).
        #[serde(default)]
        writes_only: bool,
    },
    /// Every write to every member; reads from the first that answers.
    Replicate {
        members: Vec<String>,
        /// `"all"`: answer once every member has the write; `"first"`: once one has.
        #[serde(default)]
        ack: Ack,
    },
}

/// How a write-through cache stays true to writes made through other
/// Keyways (README "One host or several").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coherence {
    /// Read the durable SQL store's change log and drop changed keys.
    #[default]
    Watch,
    /// Trust that no other Keyway writes the durable store.
    None,
}

fn default_max_staleness_ms() -> u64 {
    100
}

/// When a replicated write is acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    #[default]
    All,
    First,
}

fn default_fraction() -> f64 {
    1.0
}

fn default_failures_to_mark_down() -> u32 {
    3
}

fn default_probe_interval_ms() -> u64 {
    1000
}

impl PolicyConfig {
    /// The names this policy is built on, with the field naming each.
    pub fn members(&self) -> Vec<(String, &str)> {
        match self {
            PolicyConfig::WriteThrough { cache, durable, .. } => {
                vec![("cache".into(), cache), ("durable".into(), durable)]
            }
            PolicyConfig::Migrate { from, to, .. } => {
                vec![("from".into(), from), ("to".into(), to)]
            }
            PolicyConfig::Shadow {
                primary, shadow, ..
            } => vec![("primary".into(), primary), ("shadow".into(), shadow)],
            PolicyConfig::Failover { members, .. } | PolicyConfig::Replicate { members, .. } => {
                members
                    .iter()
                    .enumerate()
                    .map(|(i, member)| (format!("members[{i}]"), member.as_str()))
                    .collect()
            }
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Client connections per process; more are refused with the protocol's error.
    pub max_connections: usize,
    /// Largest memcached item (key + value + 56 bytes of header, as memcached counts).
    pub item_size: Size,
    /// Longest memcached get/gets/gat/gats line (other lines: 2048 bytes, as memcached).
    pub max_get_line: Size,
    /// Most arguments in one RESP command.
    pub max_args: usize,
    /// Largest RESP bulk argument.
    pub max_bulk: Size,
    /// Longest RESP inline command.
    pub max_inline: Size,
    /// Seconds a draining shutdown waits for in-flight requests.
    pub shutdown_grace_seconds: u64,
    /// Seconds a client may send nothing before it is disconnected; 0 never
    /// (memcached's and redis's default).
    pub idle_timeout_seconds: u64,
    /// Most requests of one connection read and not yet answered: a longer
    /// pipeline is answered in turns of this many, and no more of it is
    /// read meanwhile.
    pub max_pipeline: usize,
    /// Most reply bytes held for one connection (a single larger reply is
    /// still sent whole): past it, Keyway writes before answering more.
    pub max_output_buffer: Size,
    /// Seconds a client may leave its replies unread before it is
    /// disconnected (its replies would otherwise stay in memory).
    pub client_write_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            item_size: Size(1024 * 1024),
            max_get_line: Size(1024 * 1024),
            max_args: 1024 * 1024,
            max_bulk: Size(512 * 1024 * 1024),
            max_inline: Size(64 * 1024),
            shutdown_grace_seconds: 10,
            idle_timeout_seconds: 0,
            max_pipeline: 1024,
            max_output_buffer: Size(4 * 1024 * 1024),
            client_write_timeout_seconds: 30,
        }
    }
}

impl Limits {
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_seconds > 0).then(|| Duration::from_secs(self.idle_timeout_seconds))
    }

    pub fn client_write_timeout(&self) -> Duration {
        Duration::from_secs(self.client_write_timeout_seconds)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Connection worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Where relative `sqlite://` paths live (created when missing); the
    /// `--data-dir` flag overrides it.
    pub data_dir: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            workers: 0,
            data_dir: PathBuf::from("keyway-data"),
        }
    }
}

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
    /// memcached and redis backends: seconds between resolving each
    /// server's host name again (a name that moves is followed; every new
    /// connection resolves it too); 0 only on reconnect.
    #[serde(default = "default_resolve_interval_seconds")]
    pub resolve_interval_seconds: u64,
    /// memcached backends: which server holds a key, as the client library
    /// that filled the pool decides it (README "Putting Keyway in front of
    /// an existing pool").
    #[serde(default)]
    pub placement: Placement,
    /// SQL backends: how often the change log is read while a per-host tier
    /// (a write-through policy's memory cache) sits in front of the backend.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
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
            poll_interval_ms: default_poll_interval_ms(),
            placement: Placement::default(),
            resolve_interval_seconds: default_resolve_interval_seconds(),
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
        crate::tls::Connector::new(self.tls_ca_file.as_deref(), name)
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

/// One routing rule: exactly one matcher, and the backend or the policy its
/// keys go to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: Option<String>,
    pub glob: Option<String>,
    pub regex: Option<String>,
    /// Django cache keys (`KEY_PREFIX:VERSION:key`) whose key starts with
    /// this, at any version: one rule for every `VERSION`.
    pub django: Option<String>,
    /// With `django`: the `KEY_PREFIX` of Django's CACHES setting (default "").
    pub key_prefix: Option<String>,
    /// TTLs set on this route are raised to at least this many seconds.
    pub min_ttl_seconds: Option<u64>,
    /// TTLs set on this route are capped at this many seconds; items that
    /// would never expire get this TTL.
    pub max_ttl_seconds: Option<u64>,
    pub backend: Option<String>,
    pub policy: Option<String>,
    /// Whether FLUSHDB/FLUSHALL/flush_all skip this route's backend. Defaults
    /// to true for SQL backends (a durable session table must not vanish
    /// because Django's cache.clear() ran) and false for the others.
    pub protected: Option<bool>,
}

impl RouteConfig {
    /// The matcher as written, e.g. `prefix = "session:"`.
    pub fn matcher(&self) -> String {
        let written = [
            ("prefix", &self.prefix),
            ("glob", &self.glob),
            ("regex", &self.regex),
            ("django", &self.django),
        ];
        written
            .iter()
            .find_map(|(field, value)| Some(format!("{field} = {:?}", value.as_ref()?)))
            .unwrap_or_default()
    }

    /// The backend or policy this route names (validated: exactly one).
    pub fn target(&self) -> &str {
        self.backend
            .as_deref()
            .or(self.policy.as_deref())
            .expect("validated by Config::validate")
    }
}

/// A byte count written as an integer or a string such as `"64MiB"` or `"1 GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn as_u64(self) -> u64 {
        self.0
    }
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(Size(n)),
            Raw::Text(text) => parse_size::parse_size(&text).map(Size).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a size ({e}); write e.g. \"64MiB\""
                ))
            }),
        }
    }
}

impl Config {
    /// The configuration as TOML, with passwords in backend URLs replaced
    /// by `***` (what the admin listener's `/config` shows).
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        for backend in shown.backends.values_mut() {
            backend.url = redact_url(&backend.url);
        }
        toml::to_string(&shown)
            .unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }
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

/// A configuration problem, pointing at the field to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn problem(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl Config {
    /// Parses TOML and validates it; a syntax error names its line and column.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let field = e.span().map_or_else(
                || "config".to_string(),
                |span| {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}")
                },
            );
            problem(field, e.message().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn embedded_default() -> Self {
        Self::from_toml(EMBEDDED_DEFAULT).expect("the embedded default config is valid")
    }

    /// The backends `name` (a backend or a policy) ends up storing in.
    pub fn leaves<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        match self.policies.get(name) {
            Some(policy) => policy
                .members()
                .into_iter()
                .flat_map(|(_, member)| self.leaves(member))
                .collect(),
            None => vec![name],
        }
    }

    /// Whether `name` (a backend or a policy) keeps anything in a durable backend.
    pub fn is_durable(&self, name: &str) -> bool {
        self.leaves(name)
            .iter()
            .any(|leaf| self.backends[*leaf].is_durable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "redis://:s3cret@127.0.0.1:6379/2",
                "redis://:***@127.0.0.1:6379/2",
            ),
            ("redis://app:s3cret@host", "redis://app:***@host"),
            (
                "postgres://keyway:p@ss:w@db/keyway?sslmode=require&password=x",
                "postgres://keyway:***@db/keyway?sslmode=require&password=***",
            ),
            (
                "memcached://127.0.0.1:11211,127.0.0.1:11212",
                "memcached://127.0.0.1:11211,127.0.0.1:11212",
            ),
            ("sqlite://sessions.sqlite3", "sqlite://sessions.sqlite3"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let config = Config::from_toml(
            "[listen]\nresp = \"127.0.0.1:0\"\n[backends.r]\nurl = \"redis://:hunter2@127.0.0.1:1\"\n[[routes]]\nglob = \"*\"\nbackend = \"r\"\n",
        )
        .unwrap();
        let shown = config.redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            Config::from_toml(&shown).is_ok(),
            "what /config shows loads again: {shown}"
        );
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded_default();
        assert_eq!(config.listen.memcache.as_deref(), Some("127.0.0.1:11211"));
        assert_eq!(config.listen.resp.as_deref(), Some("127.0.0.1:6379"));
    }

    #[test]
    fn errors_name_the_field() {
        let base = "[listen]\nresp = \"127.0.0.1:0\"\n[backends.hot]\nurl = \"memory://\"\ncapacity = \"64MiB\"\n";
        let table = [
            ("[[routes]]\nglob = \"*\"\nbackend = \"hot\"\n", None),
            (
                "[[routes]]\nglob = \"*\"\nbackend = \"hot\"\n[[routes]]\nprefix = \"a\"\nbackend = \"sesions\"\n",
                Some("routes[1].backend: no backend named \"sesions\" (defined: hot)"),
            ),
            ("[[routes]]\nglob = \"*\"\nprefix = \"x\"\nbackend = \"hot\"\n", Some("routes[0]: needs exactly one of prefix, glob, regex or django")),
            ("[[routes]]\nregex = \"(\"\nbackend = \"hot\"\n", Some("routes[0].regex")),
            ("[[routes]]\nglob = \"*\"\nbackend = \"hot\"\nwhat = 1\n", Some("line 9: unknown field `what`")),
        ];
        for (routes, want) in table {
            let result = Config::from_toml(&format!("{base}{routes}"));
            match want {
                None => assert!(result.is_ok(), "{result:?}"),
                Some(want) => {
                    let got = result.expect_err(routes).to_string();
                    assert!(got.starts_with(want), "{got}");
                }
            }
        }
    }

    #[test]
    fn policies_are_checked_by_name_and_for_cycles() {
        let base = "[listen]\nresp = \"127.0.0.1:0\"\n[backends.m]\nurl = \"memory://\"\n\
                    [backends.db]\nurl = \"sqlite://x.sqlite3\"\n";
        let table = [
            (
                "[policies.t]\nkind = \"write-through\"\ncache = \"m\"\ndurable = \"db\"\n\
                 [policies.mv]\nkind = \"migrate\"\nfrom = \"m\"\nto = \"t\"\n\
                 [[routes]]\nglob = \"*\"\npolicy = \"mv\"\n",
                None,
            ),
            (
                "[policies.t]\nkind = \"write-through\"\ncache = \"m\"\ndurable = \"dbb\"\n[[routes]]\nglob = \"*\"\npolicy = \"t\"\n",
                Some("policies.t.durable: no backend or policy named \"dbb\""),
            ),
            (
                "[policies.a]\nkind = \"migrate\"\nfrom = \"m\"\nto = \"b\"\n[policies.b]\nkind = \"migrate\"\nfrom = \"a\"\nto = \"db\"\n\
                 [[routes]]\nglob = \"*\"\npolicy = \"a\"\n",
                Some("policies.a: it contains itself (through b)"),
            ),
            (
                "[policies.f]\nkind = \"failover\"\nmembers = [\"m\"]\n[[routes]]\nglob = \"*\"\npolicy = \"f\"\n",
                Some("policies.f: needs at least two members"),
            ),
            (
                "[policies.t]\nkind = \"tiered\"\n[[routes]]\nglob = \"*\"\npolicy = \"t\"\n",
                Some("line 8: unknown variant `tiered`, expected one of `write-through`"),
            ),
            (
                "[[routes]]\nglob = \"*\"\nbackend = \"m\"\npolicy = \"m\"\n",
                Some("routes[0]: needs exactly one of backend or policy"),
            ),
            (
                "[[routes]]\nglob = \"*\"\npolicy = \"m\"\n",
                Some("routes[0].policy: no policy named \"m\""),
            ),
        ];
        for (rest, want) in table {
            let result = Config::from_toml(&format!("{base}{rest}"));
            match want {
                None => {
                    let config = result.unwrap();
                    assert_eq!(config.leaves("mv"), ["m", "m", "db"]);
                    assert!(config.is_durable("mv") && !config.is_durable("m"));
                }
                Some(want) => {
                    let got = result.expect_err(rest).to_string();
                    assert!(got.starts_with(want), "{got}");
                }
            }
        }
    }

    #[test]
    fn sizes_parse_in_both_forms() {
        let text = "[listen]\nresp = \"127.0.0.1:0\"\n[limits]\nitem_size = 2048\nmax_bulk = \"1MiB\"\n\
                    [backends.m]\nurl = \"memory://\"\ncapacity = \"1 GiB\"\n[[routes]]\nglob = \"*\"\nbackend = \"m\"\n";
        let config = Config::from_toml(text).unwrap();
        assert_eq!(config.limits.item_size, Size(2048));
        assert_eq!(config.limits.max_bulk, Size(1 << 20));
        assert_eq!(config.backends["m"].capacity, Size(1 << 30));
    }

    #[test]
    fn socket_listeners_and_their_mode() {
        let route =
            "[backends.m]\nurl = \"memory://\"\n[[routes]]\nglob = \"*\"\nbackend = \"m\"\n";
        let with = |listen: &str| Config::from_toml(&format!("[listen]\n{listen}\n{route}"));
        let config =
            with("memcache_socket = \"/run/k/mc.sock\"").expect("a socket alone is a listener");
        assert_eq!(config.listen.socket_mode, FileMode(0o700));
        let config = with("resp_socket = \"r.sock\"\nsocket_mode = \"0660\"").unwrap();
        assert_eq!(config.listen.socket_mode, FileMode(0o660));
        assert!(config.redacted_toml().contains("socket_mode = \"0660\""));
        for (listen, field, says) in [
            (
                "resp_socket = \"r\"\nsocket_mode = \"0999\"",
                "line 3",
                "octal",
            ),
            (
                "resp_socket = \"r\"\nsocket_mode = \"01777\"",
                "line 3",
                "octal",
            ),
            ("resp_socket = \"\"", "listen.resp_socket", "empty path"),
            (
                "memcache_socket = \"s\"\nresp_socket = \"s\"",
                "listen.resp_socket",
                "same path",
            ),
        ] {
            let error = with(listen).unwrap_err().to_string();
            assert!(
                error.contains(field) && error.contains(says),
                "{listen}: {error}"
            );
        }
    }
}
