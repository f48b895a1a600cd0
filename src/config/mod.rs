//! Configuration: the TOML file's shape, its defaults, and `validate()`, whose
//! messages name the offending field (`routes[2].backend: no backend named "sesions"`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

mod auth;
mod backends;
mod limits;
mod listen;
pub mod permissions;
mod policies;
mod routes;
mod sessions;
mod topology;
pub mod url;
mod validate;
pub use auth::{AdminToken, Auth, MemcacheAuth, Secret, UserConfig, Users};
pub use backends::{redact_url, BackendConfig, Placement};
pub use limits::{Limits, Runtime, Size};
pub use listen::{ClientUser, FileMode, Listen, ListenerName, Sentinel, SentinelAuth, Tls};
pub use policies::{Ack, Coherence, PolicyConfig};
pub use routes::{RouteConfig, RouteListener};
pub use sessions::Sessions;
pub use topology::{url_is_per_host, SAMPLE_SESSION_KEY};
pub use url::{BackendUrl, Dialect, MemcachedServer, RedisUrl};

/// The configuration Keyway runs with when given none: both listeners on
/// loopback, Django sessions in a SQLite file, every other key in memory.
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
    /// Users clients must authenticate as (none: no AUTH needed); memcached
    /// clients too with `memcache = "ascii"`.
    #[serde(default)]
    pub auth: Auth,
    /// TLS on the listeners it names.
    pub tls: Option<Tls>,
    /// What the sentinel listener (`listen.sentinel`) answers.
    #[serde(default)]
    pub sentinel: Sentinel,
    /// What Keyway does with the Django sessions it stores.
    #[serde(default)]
    pub sessions: Sessions,
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

    #[test]
    fn a_sentinel_listener_needs_an_address_to_hand_out() {
        let route =
            "[backends.m]\nurl = \"memory://\"\n[[routes]]\nglob = \"*\"\nbackend = \"m\"\n";
        let with = |text: &str| Config::from_toml(&format!("{text}\n{route}"));
        let config = with("[listen]\nresp = \"127.0.0.1:6379\"\nsentinel = \"127.0.0.1:26379\"")
            .expect("the RESP listener's address is handed out");
        assert_eq!(config.sentinel.master_name, "mymaster");
        with("[listen]\nresp = \"0.0.0.0:6379\"\nsentinel = \"0.0.0.0:26379\"\n[sentinel]\nannounce = \"10.0.0.5:6379\"")
            .expect("announced");
        for (text, field) in [
            (
                "[listen]\nmemcache = \"127.0.0.1:1\"\nsentinel = \"127.0.0.1:26379\"",
                "listen.sentinel",
            ),
            (
                "[listen]\nresp = \"0.0.0.0:6379\"\nsentinel = \"127.0.0.1:26379\"",
                "sentinel.announce",
            ),
            (
                "[listen]\nresp = \"127.0.0.1:1\"\n[sentinel]\nannounce = \"nohost\"",
                "sentinel.announce",
            ),
            (
                "[listen]\nresp = \"127.0.0.1:1\"\n[sentinel]\nmaster_name = \"a b\"",
                "sentinel.master_name",
            ),
        ] {
            let error = with(text).unwrap_err().to_string();
            assert!(error.contains(field), "{text}: {error}");
        }
    }
}
