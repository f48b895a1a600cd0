//! Building the router from a configuration, and rebuilding it on reload
//! while keeping every backend and policy whose configuration did not
//! change (their connections and figures carry over).

use super::*;

fn position(slots: &[Slot], name: &str) -> usize {
    slots
        .iter()
        .position(|slot| slot.name == name)
        .expect("validated by Config::validate")
}

impl Slot {
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
        let mut slots = Self::build_slots(config, previous)?;
        let slot_of = |name: &str| position(&slots, name);
        let mut protected = Vec::new();
        for route in &config.routes {
            if route.protected.unwrap_or(config.is_durable(route.target())) {
                protected.extend(config.leaves(route.target()).into_iter().map(slot_of));
            }
        }
        for slot in protected {
            slots[slot].protected = true;
        }
        let mut router = Self::over(slots, config, config.routes.iter());
        // Every backend, routed or not, as before listeners had keyspaces.
        router.reaches = vec![true; router.slots.len()];
        Ok(router)
    }

    /// This router's backends and policies behind only the routes that
    /// serve `listener`: the keyspace its clients see.
    pub fn for_listener(&self, config: &Config, listener: RouteListener) -> Router {
        let routes = config.routes.iter().filter(|route| route.serves(listener));
        Self::over(self.slots.clone(), config, routes)
    }

    fn over<'r>(
        slots: Vec<Slot>,
        config: &Config,
        routes: impl Iterator<Item = &'r RouteConfig> + Clone,
    ) -> Router {
        let slot_of = |name: &str| position(&slots, name);
        let compiled: Vec<RouteConfig> = routes.clone().cloned().collect();
        let table = RouteTable::compile(&compiled, slot_of);
        let mut routed = Vec::new();
        let mut reaches = vec![false; slots.len()];
        for route in routes {
            let slot = slot_of(route.target());
            if !routed.contains(&slot) {
                routed.push(slot);
            }
            for leaf in config.leaves(route.target()) {
                reaches[slot_of(leaf)] = true;
            }
        }
        Router {
            table,
            slots,
            routed,
            reaches,
            sessions: config.sessions.clone(),
        }
    }

    /// Every backend, then every policy after its members, each taken over
    /// from `previous` when what it was built from did not change (a policy
    /// also needs every member it names kept).
    fn build_slots(
        config: &Config,
        previous: Option<&Router>,
    ) -> std::result::Result<Vec<Slot>, BuildError> {
        let kept = |name: &str, built: &Built| {
            let slot = previous?.slot(name)?;
            (slot.built == *built).then(|| slot.target.clone())
        };
        let mut slots: Vec<Slot> = Vec::new();
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
            slots.push(Slot::new(name, target, built));
        }
        // Each pass builds the policies whose members exist.
        let mut pending: Vec<(&String, &PolicyConfig)> = config.policies.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(name, policy)| {
                let slot = |name: &str| slots.iter().position(|slot| slot.name == *name);
                if policy.members().iter().any(|(_, m)| slot(m).is_none()) {
                    return true;
                }
                let built = Built::Policy((*policy).clone());
                let members_kept = policy.members().iter().all(|(_, m)| !fresh.contains(m));
                let target = match kept(name, &built).filter(|_| members_kept) {
                    Some(target) => target,
                    None => {
                        fresh.push(name);
                        let member = |name: &str| Some(Member(slots[slot(name)?].target.clone()));
                        let watches = config.watches(name);
                        let built = Policy::build(policy, watches, member).expect("members exist");
                        Target::new(name, Node::Policy(Arc::new(built)))
                    }
                };
                slots.push(Slot::new(name, target, built));
                false
            });
            assert!(
                pending.len() < before,
                "validated: policies do not contain themselves"
            );
        }
        Ok(slots)
    }
}
