//! Building the router from a configuration, and rebuilding it on reload
//! while keeping every backend and policy whose configuration did not
//! change (their connections and figures carry over).

use std::sync::Arc;

use super::passage::RedisRoute;
use super::table::RouteTable;
use super::{Entry, Router};
use crate::backend::{AnyBackend, BuildError};
use crate::config::{BackendConfig, Config, PolicyConfig, RouteConfig, RouteListener};
use crate::policy::{Member, Node, Policy, Target};

fn position(entries: &[Entry], name: &str) -> usize {
    entries
        .iter()
        .position(|entry| entry.name == name)
        .expect("validated by Config::validate")
}

impl Entry {
    fn new(name: &str, target: Target, built: Built) -> Self {
        Self {
            name: name.to_string(),
            target,
            built,
            protected: false,
        }
    }
}

#[derive(Clone, PartialEq)]
pub(super) enum Built {
    Backend(BackendConfig, std::path::PathBuf),
    Policy(PolicyConfig),
}

impl Router {
    pub fn build(config: &Config) -> std::result::Result<Self, BuildError> {
        Self::rebuild(config, None)
    }

    /// Builds the router for `config`, taking over from `previous` every
    /// backend whose settings did not change (with its open connections and
    /// its figures), and every policy whose settings and members did not.
    pub fn rebuild(
        config: &Config,
        previous: Option<&Router>,
    ) -> std::result::Result<Self, BuildError> {
        let mut entries = Self::build_entries(config, previous)?;
        let entry_of = |name: &str| position(&entries, name);
        let mut protected = Vec::new();
        for route in &config.routes {
            if route.protected.unwrap_or(config.is_durable(route.target())) {
                protected.extend(config.leaves(route.target()).into_iter().map(entry_of));
            }
        }
        for entry in protected {
            entries[entry].protected = true;
        }
        let mut router = Self::over(entries, config, config.routes.iter());
        // Every backend, routed or not, as before listeners had keyspaces.
        router.reaches = vec![true; router.entries.len()];
        Ok(router)
    }

    /// This router's backends and policies behind only the routes that
    /// serve `listener`: the keyspace its clients see.
    pub fn for_listener(&self, config: &Config, listener: RouteListener) -> Router {
        let routes = config.routes.iter().filter(|route| route.serves(listener));
        Self::over(self.entries.clone(), config, routes)
    }

    fn over<'r>(
        entries: Vec<Entry>,
        config: &Config,
        routes: impl Iterator<Item = &'r RouteConfig> + Clone,
    ) -> Router {
        let entry_of = |name: &str| position(&entries, name);
        let compiled: Vec<RouteConfig> = routes.clone().cloned().collect();
        let table = RouteTable::compile(&compiled, entry_of);
        let mut routed = Vec::new();
        let mut reaches = vec![false; entries.len()];
        for route in routes {
            let entry = entry_of(route.target());
            if !routed.contains(&entry) {
                routed.push(entry);
            }
            for leaf in config.leaves(route.target()) {
                reaches[entry_of(leaf)] = true;
            }
        }
        let redis: Vec<RedisRoute> = (0..entries.len())
            .filter(|&entry| matches!(entries[entry].target.backend(), Some(AnyBackend::Redis(_))))
            .map(RedisRoute)
            .collect();
        let sole_redis = match routed[..] {
            [entry] => match entries[entry].target.backend() {
                Some(AnyBackend::Redis(backend)) if !backend.is_cluster() => {
                    Some(RedisRoute(entry))
                }
                _ => None,
            },
            _ => None,
        };
        // Pub/sub names channels, not keys: it goes to the one redis server
        // this listener's routes reach (directly or inside a tier), so that
        // every publisher and subscriber through it meets on one server.
        let reached_redis: Vec<RedisRoute> = redis
            .iter()
            .copied()
            .filter(|route: &RedisRoute| reaches[route.0])
            .collect();
        let redis_for_channels = match reached_redis[..] {
            [route] => match entries[route.0].target.backend() {
                Some(AnyBackend::Redis(backend)) if !backend.is_cluster() => Some(route),
                _ => None,
            },
            _ => None,
        };
        Router {
            table,
            entries,
            routed,
            reaches,
            redis,
            sole_redis,
            reaches_redis: !reached_redis.is_empty(),
            redis_for_channels,
            sessions: config.sessions.clone(),
        }
    }

    /// Every backend, then every policy after its members, each taken over
    /// from `previous` when what it was built from did not change (a policy
    /// also needs every member it names kept).
    fn build_entries(
        config: &Config,
        previous: Option<&Router>,
    ) -> std::result::Result<Vec<Entry>, BuildError> {
        let kept = |name: &str, built: &Built| {
            let entry = previous?.entry(name)?;
            (entry.built == *built).then(|| entry.target.clone())
        };
        let mut entries: Vec<Entry> = Vec::new();
        let mut fresh: Vec<&str> = Vec::new();
        for (name, backend) in &config.backends {
            let built = Built::Backend(backend.clone(), config.runtime.data_dir.clone());
            let target = match kept(name, &built) {
                Some(target) => target,
                None => {
                    fresh.push(name);
                    let backend = AnyBackend::build(backend, &config.runtime.data_dir)?;
                    Target::new(name, Node::Backend(Arc::new(backend)))
                }
            };
            entries.push(Entry::new(name, target, built));
        }
        // Each pass builds the policies whose members exist.
        let mut pending: Vec<(&String, &PolicyConfig)> = config.policies.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(name, policy)| {
                let entry = |name: &str| entries.iter().position(|entry| entry.name == *name);
                if policy.members().iter().any(|(_, m)| entry(m).is_none()) {
                    return true;
                }
                let built = Built::Policy((*policy).clone());
                let members_kept = policy.members().iter().all(|(_, m)| !fresh.contains(m));
                let target = match kept(name, &built).filter(|_| members_kept) {
                    Some(target) => target,
                    None => {
                        fresh.push(name);
                        let member =
                            |name: &str| Some(Member(entries[entry(name)?].target.clone()));
                        let watches = config.watches(name);
                        let built = Policy::build(policy, watches, member).expect("members exist");
                        Target::new(name, Node::Policy(Arc::new(built)))
                    }
                };
                entries.push(Entry::new(name, target, built));
                false
            });
            assert!(
                pending.len() < before,
                "validated: policies do not contain themselves"
            );
        }
        Ok(entries)
    }
}
