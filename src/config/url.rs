//! Backend URLs, parsed in one place into a typed [`BackendUrl`]: `check-config`
//! and the backends read the same parse, so each mistake has one message.

/// What a backend URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendUrl {
    /// `memory://`
    Memory,
    /// `memcached://host:port[:weight],...`
    Memcached(Vec<MemcachedServer>),
    /// `redis://` or, with TLS, `rediss://`; `redis-sentinel://` (the
    /// master the sentinels name: `url.sentinel`); `redis-cluster://` (a
    /// Redis Cluster: `url.cluster`).
    Redis { url: RedisUrl, tls: bool },
    /// `sqlite://`, `postgres[ql]://`, `mysql://`, `mariadb://`: the URL is
    /// handed to the driver as written.
    Sql(Dialect),
}

/// Schemes this build understands, for the one "unsupported scheme" message.
const SCHEMES: &str = "memory://, memcached://, redis://, rediss://, redis-sentinel://, \
     redis-cluster://, sqlite://, postgres:// and mysql://";

impl BackendUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let unsupported = || format!("{url:?}: unsupported scheme; this build supports {SCHEMES}");
        let (scheme, rest) = url.split_once("://").ok_or_else(unsupported)?;
        if let Some(dialect) = Dialect::of_scheme(scheme) {
            return Ok(BackendUrl::Sql(dialect));
        }
        match scheme {
            "memory" => Ok(BackendUrl::Memory),
            "memcached" => parse_servers(rest).map(BackendUrl::Memcached),
            "redis" | "rediss" => Ok(BackendUrl::Redis {
                url: parse_redis(rest)?,
                tls: scheme == "rediss",
            }),
            "redis-sentinel" => Ok(BackendUrl::Redis {
                url: parse_redis_sentinel(rest)?,
                tls: false,
            }),
            "redis-cluster" => Ok(BackendUrl::Redis {
                url: parse_redis_cluster(rest)?,
                tls: false,
            }),
            _ => Err(unsupported()),
        }
    }

    /// Whether the URL names a store only this host reaches: memory, a
    /// SQLite file, or memcached/redis/SQL servers on loopback.
    pub fn is_per_host(&self, url: &str) -> bool {
        match self {
            BackendUrl::Memory | BackendUrl::Sql(Dialect::Sqlite) => true,
            BackendUrl::Memcached(servers) => {
                servers.iter().all(|server| host_is_local(&server.host))
            }
            BackendUrl::Redis { url, .. } => match (&url.sentinel, &url.cluster) {
                (Some(sentinel), _) => sentinel.servers.iter().all(|(host, _)| host_is_local(host)),
                (_, Some(seeds)) => seeds.iter().all(|(host, _)| host_is_local(host)),
                (None, None) => host_is_local(&url.host),
            },
            BackendUrl::Sql(Dialect::Postgres | Dialect::MySql) => {
                // [user[:password]@]host[:port][/database][?options]
                let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
                let authority = rest.split(['/', '?']).next().unwrap_or("");
                let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                let host = match host_port.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(v6),
                    None => host_port.split(':').next().unwrap_or(host_port),
                };
                // No host: a Unix socket on this machine.
                host.is_empty() || host_is_local(host)
            }
        }
    }
}

/// Whether `host` is this machine: a loopback address or `localhost`.
pub fn host_is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One server of a memcached pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedServer {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

/// Parses `host:port[:weight],...` (the part after `memcached://`).
pub fn parse_servers(list: &str) -> Result<Vec<MemcachedServer>, String> {
    list.split(',')
        .map(|spec| {
            let mut parts = spec.trim().rsplitn(3, ':').collect::<Vec<_>>();
            parts.reverse();
            let (host, port, weight) = match parts.as_slice() {
                [host, port] => (*host, *port, "1"),
                [host, port, weight] => (*host, *port, *weight),
                _ => return Err(format!("{spec:?} is not host:port[:weight]")),
            };
            Ok(MemcachedServer {
                host: host.to_string(),
                port: port.parse().map_err(|_| format!("{spec:?}: bad port"))?,
                weight: weight
                    .parse()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| format!("{spec:?}: bad weight"))?,
            })
        })
        .collect()
}

/// The parts of a redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u8,
    /// `redis-sentinel://`: the sentinels to ask, and for which master
    /// (`host`/`port` are then the first sentinel's, unused).
    pub sentinel: Option<SentinelTarget>,
    /// `redis-cluster://`: the nodes first asked for the cluster's slot map
    /// (`host`/`port` are then the first one's).
    pub cluster: Option<Vec<(String, u16)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub servers: Vec<(String, u16)>,
    pub master: String,
}

/// Parses what follows `redis-sentinel://`:
/// `[[user]:password@]host[:port],host[:port].../MASTER[/db]` (port 26379
/// when omitted).
pub fn parse_redis_sentinel(rest: &str) -> Result<RedisUrl, String> {
    let example = "e.g. redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster";
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, rest),
    };
    let Some((hosts, path)) = address.split_once('/') else {
        return Err(format!(
            "needs the master's name after the sentinels, {example}"
        ));
    };
    let (master, db) = split_db(path)?;
    if master.is_empty() {
        return Err(format!(
            "needs the master's name after the sentinels, {example}"
        ));
    }
    let servers = parse_host_list(hosts, 26379, example)?;
    let mut url = parse_redis(&match credentials {
        Some(credentials) => format!("{credentials}@{}:{}/{db}", servers[0].0, servers[0].1),
        None => format!("{}:{}/{db}", servers[0].0, servers[0].1),
    })?;
    url.sentinel = Some(SentinelTarget {
        servers,
        master: master.to_string(),
    });
    Ok(url)
}

/// `host:port,host:port...` (a missing port is `default_port`).
fn parse_host_list(
    hosts: &str,
    default_port: u16,
    example: &str,
) -> Result<Vec<(String, u16)>, String> {
    hosts
        .split(',')
        .map(|server| match server.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => port
                .parse()
                .map(|port| (host.to_string(), port))
                .map_err(|_| format!("{port:?} is not a port")),
            Some(_) => Err(format!("{server:?} needs a host, {example}")),
            None if !server.is_empty() => Ok((server.to_string(), default_port)),
            None => Err(format!("needs at least one server, {example}")),
        })
        .collect()
}

/// Parses what follows `redis-cluster://`:
/// `[[user]:password@]host[:port],host[:port]...` (port 6379 when omitted),
/// the nodes asked for the slot map until one answers.
pub fn parse_redis_cluster(rest: &str) -> Result<RedisUrl, String> {
    let example = "e.g. redis-cluster://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379";
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, rest),
    };
    let hosts = match address.split_once('/') {
        None | Some((_, "")) | Some((_, "0")) => address.split('/').next().unwrap_or(""),
        Some((_, db)) => {
            return Err(format!(
                "a Redis Cluster has only database 0 (redis refuses SELECT in cluster mode), \
                 so /{db} cannot be served; remove it, {example}"
            ))
        }
    };
    let seeds = parse_host_list(hosts, 6379, example)?;
    let mut url = parse_redis(&match credentials {
        Some(credentials) => format!("{credentials}@{}:{}", seeds[0].0, seeds[0].1),
        None => format!("{}:{}", seeds[0].0, seeds[0].1),
    })?;
    url.cluster = Some(seeds);
    Ok(url)
}

/// `text` and the database number after its `/` (0 when there is none).
fn split_db(text: &str) -> Result<(&str, u8), String> {
    match text.split_once('/') {
        Some((head, "")) => Ok((head, 0)),
        Some((head, db)) => db
            .parse()
            .ok()
            .filter(|db| *db < 16)
            .map(|db| (head, db))
            .ok_or_else(|| format!("{db:?} is not a database number 0-15")),
        None => Ok((text, 0)),
    }
}

/// Parses what follows `redis://`: `[[user]:password@]host[:port][/db]`.
pub fn parse_redis(rest: &str) -> Result<RedisUrl, String> {
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, rest),
    };
    let (address, db) = split_db(address)?;
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse()
                .map_err(|_| format!("{port:?} is not a port"))?,
        ),
        None => (address, 6379),
    };
    if host.is_empty() {
        return Err("needs a host, e.g. redis://127.0.0.1:6379".into());
    }
    let (user, password) = match credentials {
        None => (None, None),
        Some(credentials) => match credentials.split_once(':') {
            Some(("", password)) => (None, Some(password.to_string())),
            Some((user, password)) => (Some(user.to_string()), Some(password.to_string())),
            None => (None, Some(credentials.to_string())),
        },
    };
    Ok(RedisUrl {
        host: host.to_string(),
        port,
        user,
        password,
        db,
        sentinel: None,
        cluster: None,
    })
}

/// Which database a SQL URL names (the SQL each needs: `backend::sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "sqlite" => Some(Dialect::Sqlite),
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            _ => None,
        }
    }

    pub fn of_url(url: &str) -> Option<Self> {
        Self::of_scheme(url.split_once("://")?.0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }
}

/// A SQL table name Keyway will interpolate into its statements.
pub fn validate_table_name(table: &str) -> Result<(), String> {
    let mut chars = table.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && table.len() <= 48;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{table:?} is not a table name; use letters, digits and _ (at most 48), not starting with a digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_parse() {
        assert_eq!(
            parse_redis("user:pw@127.0.0.1:6380/2").unwrap(),
            RedisUrl {
                host: "127.0.0.1".into(),
                port: 6380,
                user: Some("user".into()),
                password: Some("pw".into()),
                db: 2,
                sentinel: None,
                cluster: None,
            }
        );
        let cluster = parse_redis_cluster(":pw@10.0.0.1:7000,10.0.0.2").unwrap();
        assert_eq!(cluster.password.as_deref(), Some("pw"));
        assert_eq!(
            cluster.cluster,
            Some(vec![("10.0.0.1".into(), 7000), ("10.0.0.2".into(), 6379)])
        );
        assert_eq!(parse_redis_cluster("h:1/0").unwrap().db, 0);
        assert!(parse_redis_cluster("h:1/2")
            .unwrap_err()
            .contains("only database 0"));
        for bad in ["", "h:x", ":1,h:2"] {
            assert!(parse_redis_cluster(bad).is_err(), "{bad}");
        }
        let sentinel = parse_redis_sentinel(":pw@10.0.0.1:26380,10.0.0.2/kolla/3").unwrap();
        assert_eq!(sentinel.password.as_deref(), Some("pw"));
        assert_eq!(sentinel.db, 3);
        assert_eq!(
            sentinel.sentinel,
            Some(SentinelTarget {
                servers: vec![("10.0.0.1".into(), 26380), ("10.0.0.2".into(), 26379)],
                master: "kolla".into(),
            })
        );
        for bad in ["h:1", "h:1/", ":1/m", "h:x/m", "h/m/99"] {
            assert!(parse_redis_sentinel(bad).is_err(), "{bad}");
        }
        let plain = parse_redis("localhost").unwrap();
        assert_eq!((plain.port, plain.db, plain.password), (6379, 0, None));
        assert_eq!(
            parse_redis(":pw@h:1").unwrap().password.as_deref(),
            Some("pw")
        );
        assert!(parse_redis("h:1/16").is_err());
        assert!(parse_redis("h:x").is_err());
    }

    #[test]
    fn table_names_are_identifiers() {
        assert!(validate_table_name("keyway_items").is_ok());
        assert!(validate_table_name("_t2").is_ok());
        for bad in ["", "2t", "t; DROP TABLE x", "a-b", "\"t\""] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_name_their_kind() {
        assert_eq!(
            BackendUrl::parse("sqlite://x.db"),
            Ok(BackendUrl::Sql(Dialect::Sqlite))
        );
        assert_eq!(
            BackendUrl::parse("postgresql://u@h/d"),
            Ok(BackendUrl::Sql(Dialect::Postgres))
        );
        assert_eq!(
            BackendUrl::parse("mariadb://u@h/d"),
            Ok(BackendUrl::Sql(Dialect::MySql))
        );
        assert_eq!(BackendUrl::parse("memory://"), Ok(BackendUrl::Memory));
        assert!(matches!(
            BackendUrl::parse("rediss://h:1"),
            Ok(BackendUrl::Redis { tls: true, .. })
        ));
        for bad in ["memcache://h:1", "h:1", "redis://h:x", "memcached://h"] {
            assert!(BackendUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(BackendUrl::parse("ftp://x")
            .unwrap_err()
            .contains("unsupported scheme"));
    }
}
