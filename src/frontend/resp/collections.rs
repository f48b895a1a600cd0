//! redis's collections on memory routes: a command on hashes, lists, sets
//! or sorted sets (and INCRBYFLOAT) whose keys all route to one memory
//! backend runs there whole (`backend::memory::types`), as a redis would
//! run it. TYPE, RENAME, COPY, OBJECT and MEMORY USAGE go there too, since
//! the key may hold a collection. Other routes hold strings: those
//! commands are refused there with what to do instead.

use bytes::Bytes;
use keyway_protocol::resp::{Reply, Version};

use super::commands::{find, Cmd, CommandSpec, Does, ItemCmd, KeyCmd};
use super::forward::{plan, Plan};
use super::redis_arity::redis_arity_error;
use super::RespSession;
use crate::backend::memory::types;

/// Whether the memory store may run this command (cheap: no routing).
pub(super) fn may_run(spec: &CommandSpec, name: &[u8]) -> bool {
    let typed = match spec.does {
        Does::Forward => true,
        Does::Serve(cmd) => is_key_command(cmd),
        Does::Refuse(_) => false,
    };
    typed && types::runs(name)
}

/// Keyway's commands on any key that a memory route answers itself (the
/// key may hold a collection).
pub(super) fn is_key_command(cmd: Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Keys(KeyCmd::Type)
            | Cmd::Items(
                ItemCmd::Rename
                    | ItemCmd::RenameNx
                    | ItemCmd::Copy
                    | ItemCmd::Object
                    | ItemCmd::Memory
            )
    )
}

impl RespSession {
    /// Whether a command Keyway does not run itself runs whole elsewhere:
    /// forwarded to a redis route, or on a memory route's collections.
    pub(super) fn runs_whole(&self, args: &[Bytes]) -> bool {
        self.redis_owner(args).is_some() || self.memory_owns(args)
    }

    /// A command that names no key Keyway can route by, on the memory
    /// backend every route goes to.
    async fn on_memory_everywhere(&self, spec: &CommandSpec, args: &[Bytes]) -> Option<Reply> {
        let passage = self.shared.resp_router.memory_for_every_key()?;
        if let Some(error) = redis_arity_error(args) {
            return Some(Reply::error(error));
        }
        let resp3 = self.version == Version::Resp3;
        let run = async { Ok(passage.backend().run_typed(self.db, args, &[], resp3)) };
        passage.call([spec.family], run).await.ok().flatten()
    }

    /// What `key` holds, as TYPE names it: a memory route's or a redis
    /// route's answer; other routes hold strings.
    pub(super) async fn type_of(&self, key: &Bytes) -> Bytes {
        let args = [Bytes::from_static(b"TYPE"), key.clone()];
        let reply = match self.on_memory(&args).await {
            Some(reply) => Some(reply),
            None => match self.redis_owner(&args) {
                Some(target) => Some(self.forward_one(target, &args).await),
                None => None,
            },
        };
        match reply {
            Some(Reply::Simple(kind)) => kind,
            _ => Bytes::from_static(b"string"),
        }
    }

    /// Whether `args` would run on a memory backend (see [`Self::on_memory`]).
    fn memory_owns(&self, args: &[Bytes]) -> bool {
        if !find(&args[0]).is_some_and(|spec| may_run(spec, &args[0])) {
            return false;
        }
        let Plan::Keys(positions, _) = plan(args) else {
            return false;
        };
        self.shared
            .resp_router
            .memory_passage(positions.keys(args))
            .is_some()
    }

    /// Runs `args` on the memory backend every key it names routes to, if
    /// it is a command the memory store runs: its reply. `None`: not such
    /// a command or route, or a key command (OBJECT, COPY ... DB) that
    /// Keyway's own handler answers for a string.
    pub(super) async fn on_memory(&self, args: &[Bytes]) -> Option<Reply> {
        let spec = find(&args[0]).filter(|spec| may_run(spec, &args[0]))?;
        let positions = match plan(args) {
            Plan::Keys(positions, _) => positions,
            // SORT naming keys by pattern: where one memory backend holds
            // every key.
            Plan::Keyless(_) => return self.on_memory_everywhere(spec, args).await,
            _ => return types::numkeys_error(args),
        };
        let passage = self
            .shared
            .resp_router
            .memory_passage(positions.keys(args))?;
        if let Some(error) = redis_arity_error(args) {
            return Some(Reply::error(error));
        }
        let keys: Vec<&[u8]> = positions.keys(args).collect();
        let resp3 = self.version == Version::Resp3;
        let run = async { Ok(passage.backend().run_typed(self.db, args, &keys, resp3)) };
        passage.call([spec.family], run).await.ok().flatten()
    }
}
