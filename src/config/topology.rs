//! Where a configuration keeps its truth when several Keyways run it (one
//! per Horizon host behind a load balancer): which stores every host shares,
//! which are per host, and whether each write-through cache can stay true to
//! a store other hosts write (docs/deployments.md "One host or several").

use super::{problem, BackendUrl, Coherence, Config, ConfigError, PolicyConfig};

/// A key Django's cache session engine writes, to find the sessions' route.
pub const SAMPLE_SESSION_KEY: &str =
    ":1:django.contrib.sessions.cache0123456789abcdefghijklmnopqrstuv";

/// Whether a backend URL names a store only this host reaches: memory, a
/// SQLite file, or memcached/redis/SQL servers on loopback.
pub fn url_is_per_host(url: &str) -> bool {
    BackendUrl::parse(url).is_ok_and(|parsed| parsed.is_per_host(url))
}

impl Config {
    /// Whether what `name` (a backend or policy) holds lives on this host only.
    pub fn is_per_host(&self, name: &str) -> bool {
        match self.policies.get(name) {
            None => self
                .backends
                .get(name)
                .is_some_and(|backend| url_is_per_host(&backend.url)),
            Some(PolicyConfig::WriteThrough { durable, .. }) => self.is_per_host(durable),
            Some(PolicyConfig::Migrate { to, .. }) => self.is_per_host(to),
            Some(PolicyConfig::Shadow { primary, .. }) => self.is_per_host(primary),
            Some(
                PolicyConfig::Failover { members, .. } | PolicyConfig::Replicate { members, .. },
            ) => members.iter().all(|member| self.is_per_host(member)),
        }
    }

    /// Whether the write-through policy `name` follows its durable store's
    /// change log: its cache is per host, the store is shared or a SQLite
    /// file (other processes may write it), and coherence is not "none".
    pub fn watches(&self, name: &str) -> bool {
        let Some(PolicyConfig::WriteThrough {
            cache,
            durable,
            coherence,
            ..
        }) = self.policies.get(name)
        else {
            return false;
        };
        *coherence == Coherence::Watch && self.is_per_host(cache) && self.is_sql(durable)
    }

    fn is_sql(&self, name: &str) -> bool {
        self.backends
            .get(name)
            .is_some_and(|backend| backend.is_durable())
    }

    /// A migration that watches for other hosts' deletes cannot move a
    /// shared store's keys into one kept on this host only.
    fn validate_watched_migration(
        &self,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<(), ConfigError> {
        if self.is_per_host(to) && !self.is_per_host(from) {
            return Err(problem(
                format!("policies.{name}.to"),
                format!(
                    "{to:?} is kept on this host only while {from:?} is shared: what one \
                     Keyway copies here, another Keyway's delete (a logout) does not \
                     reach; make `to` a write-through policy over a shared SQL store, or \
                     set coherence = \"none\" if this is the only Keyway using {from:?}"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a per-host cache in front of a shared store Keyway cannot
    /// watch, unless the policy says `coherence = "none"`.
    pub(super) fn validate_coherence(&self) -> Result<(), ConfigError> {
        for (name, policy) in &self.policies {
            if let PolicyConfig::Migrate {
                from,
                to,
                coherence: Coherence::Watch,
            } = policy
            {
                self.validate_watched_migration(name, from, to)?;
            }
            let PolicyConfig::WriteThrough {
                cache,
                durable,
                coherence,
                max_staleness_ms,
            } = policy
            else {
                continue;
            };
            if *coherence == Coherence::None || !self.is_per_host(cache) {
                continue;
            }
            if !self.is_sql(durable) {
                if self.is_per_host(durable) {
                    continue; // nothing shared: nothing to watch
                }
                return Err(problem(
                    format!("policies.{name}.durable"),
                    format!(
                        "{durable:?} is not a SQL backend, so Keyway cannot watch it for other \
                         Keyways' writes, and the per-host cache {cache:?} in front of it would \
                         serve values other hosts have changed or deleted; make the durable \
                         member a SQL backend, or set coherence = \"none\" if this is the only \
                         Keyway writing it"
                    ),
                ));
            }
            let poll = self.backends[durable].poll_interval_ms;
            if poll == 0 {
                return Err(problem(
                    format!("backends.{durable}.poll_interval_ms"),
                    "must be at least 1",
                ));
            }
            if *max_staleness_ms <= poll {
                return Err(problem(
                    format!("policies.{name}.max_staleness_ms"),
                    format!(
                        "{max_staleness_ms} is not above backends.{durable}.poll_interval_ms \
                         ({poll}): the cache would never be trusted; make it at least twice the \
                         interval"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What a user running this configuration on several hosts should know:
    /// sessions kept per host (`session_route`: the index of the route
    /// [`SAMPLE_SESSION_KEY`] takes), caches that do not watch their store.
    pub fn topology_warnings(&self, session_route: Option<usize>) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(i) = session_route {
            let target = self.routes[i].target();
            if self.is_per_host(target) {
                warnings.push(format!(
                    "routes[{i}]: Django sessions go to {target:?}, which is kept on this host \
                     only; behind a load balancer that sends a user to several hosts, a user \
                     signed in on one host is a stranger on the next (docs/deployments.md \"One \
                     host or several\")"
                ));
            }
        }
        for (name, policy) in &self.policies {
            if let PolicyConfig::WriteThrough {
                cache,
                coherence: Coherence::None,
                ..
            } = policy
            {
                if self.is_per_host(cache) {
                    warnings.push(format!(
                        "policies.{name}: coherence = \"none\": the per-host cache {cache:?} \
                         does not learn of other Keyways' writes; run a single Keyway on this store"
                    ));
                }
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiered(durable_url: &str, extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!(
            "[listen]\nresp = \"127.0.0.1:6379\"\n\
             [backends.hot]\nurl = \"memory://\"\n\
             [backends.store]\nurl = \"{durable_url}\"\n\
             [policies.t]\nkind = \"write-through\"\ncache = \"hot\"\ndurable = \"store\"\n{extra}\n\
             [[routes]]\nglob = \"*\"\npolicy = \"t\"\n"
        ))
    }

    #[test]
    fn a_per_host_cache_over_a_store_keyway_cannot_watch_is_refused_unless_said_so() {
        let error = tiered("redis://redis.internal:6379", "").unwrap_err();
        assert_eq!(error.field, "policies.t.durable");
        assert!(error.message.contains("cannot watch"), "{error}");
        assert!(tiered("memcached://10.0.0.1:11211", "").is_err());
        let config = tiered("redis://redis.internal:6379", "coherence = \"none\"").unwrap();
        assert!(!config.watches("t"));
        assert!(config.topology_warnings(None)[0].contains("coherence = \"none\""));
        // Nothing shared, nothing to watch.
        assert!(tiered("redis://127.0.0.1:6379", "").is_ok());
    }

    #[test]
    fn a_per_host_cache_over_sql_watches_it_within_a_bound_above_the_poll_interval() {
        let config = tiered("postgres://k@db.internal/h", "").unwrap();
        assert!(config.watches("t"));
        assert!(tiered("sqlite://s.sqlite3", "").unwrap().watches("t"));
        let error = tiered("postgres://k@db.internal/h", "max_staleness_ms = 20").unwrap_err();
        assert_eq!(error.field, "policies.t.max_staleness_ms");
    }

    #[test]
    fn a_migration_from_a_shared_store_into_a_per_host_one_is_refused_unless_said_so() {
        let config = |to: &str, extra: &str| {
            Config::from_toml(&format!(
                "[listen]\nresp = \"127.0.0.1:6379\"\n\
                 [backends.old]\nurl = \"memcached://10.0.0.11:11211\"\n\
                 [backends.new]\nurl = \"{to}\"\n\
                 [policies.m]\nkind = \"migrate\"\nfrom = \"old\"\nto = \"new\"\n{extra}\n\
                 [[routes]]\nglob = \"*\"\npolicy = \"m\"\n"
            ))
        };
        assert_eq!(config("memory://", "").unwrap_err().field, "policies.m.to");
        assert!(config("sqlite://s.sqlite3", "").is_err());
        assert!(config("memory://", "coherence = \"none\"").is_ok());
        assert!(config("postgres://k@db.internal/h", "").is_ok());
    }

    #[test]
    fn sessions_kept_per_host_are_pointed_out() {
        let config = Config::embedded_default();
        let session_route = config
            .routes
            .iter()
            .position(|r| r.glob.as_deref().is_some_and(|g| g.contains("sessions")));
        let warnings = config.topology_warnings(session_route);
        assert!(
            warnings[0].contains("kept on this host only"),
            "{warnings:?}"
        );
        let shared = tiered("postgres://k@db.internal/h", "").unwrap();
        assert!(shared.topology_warnings(Some(0)).is_empty());
    }

    #[test]
    fn loopback_and_local_stores_are_per_host() {
        for url in [
            "memory://",
            "sqlite://sessions.sqlite3",
            "memcached://127.0.0.1:11211,localhost:11212",
            "redis://127.0.0.1:6379/0",
            "redis://:pw@[::1]:6379",
            "postgres://keyway@127.0.0.1:5432/horizon",
            "postgres:///horizon?host=/run/postgresql",
        ] {
            assert!(url_is_per_host(url), "{url}");
        }
        for url in [
            "memcached://10.0.0.11:11211,127.0.0.1:11211",
            "redis://redis.example:6379",
            "postgres://u@db/x",
            "mysql://u:p@10.1.1.1:3306/x",
        ] {
            assert!(!url_is_per_host(url), "{url}");
        }
    }
}
