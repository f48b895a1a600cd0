//! redis 7.0's arity of every command it has (redis_commands.txt, written
//! from a real redis-server's COMMAND by tests/tools/redis_commands.py):
//! what Keyway checks a forwarded command against where redis checks before
//! running it (a command queued in MULTI).

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

/// Every redis 7.0 command's arity (and each subcommand's, as
/// `container|sub`), from redis_commands.txt.
static REDIS_ARITY: LazyLock<HashMap<&'static str, i32, ahash::RandomState>> =
    LazyLock::new(|| {
        include_str!("redis_commands.txt")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, arity) = line.split_once(' ')?;
                Some((name, arity.parse().ok()?))
            })
            .collect()
    });

/// redis's own arity error for a command Keyway forwards, where redis
/// gives one before running it (in MULTI, at queue time); `None` when the
/// count is right or redis 7.0 does not know the command.
pub fn redis_arity_error(args: &[Bytes]) -> Option<String> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let &arity = REDIS_ARITY.get(name.as_str())?;
    let n = args.len() as i32;
    let fits = if arity >= 0 { n == arity } else { n >= -arity };
    (!fits).then(|| format!("ERR wrong number of arguments for '{name}' command"))
}

/// Commands with subcommands (`config`, `pubsub`, ...).
static CONTAINERS: LazyLock<std::collections::HashSet<&'static str, ahash::RandomState>> =
    LazyLock::new(|| {
        REDIS_ARITY
            .keys()
            .filter_map(|name| name.split_once('|').map(|(container, _)| container))
            .collect()
    });

/// What redis checks before anything else: that it knows the command (and
/// its subcommand) and the argument count fits. Its full name
/// (`pubsub|numsub`), or redis's error (`None`: redis has no such command).
pub fn redis_full_name(args: &[Bytes]) -> Result<String, Option<String>> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let full = match (CONTAINERS.contains(name.as_str()), args.get(1)) {
        (true, Some(sub)) => {
            let full = format!(
                "{name}|{}",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            );
            if !REDIS_ARITY.contains_key(full.as_str()) {
                return Err(Some(format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    String::from_utf8_lossy(&sub[..sub.len().min(128)]),
                    name.to_ascii_uppercase()
                )));
            }
            full
        }
        _ => name,
    };
    let Some(&arity) = REDIS_ARITY.get(full.as_str()) else {
        return Err(None);
    };
    let n = args.len() as i32;
    match if arity >= 0 { n == arity } else { n >= -arity } {
        true => Ok(full),
        false => Err(Some(format!(
            "ERR wrong number of arguments for '{full}' command"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_arity_is_redis_7s() {
        let args = |line: &str| -> Vec<Bytes> {
            line.split(' ')
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect()
        };
        assert_eq!(
            redis_arity_error(&args("ZREM b")).as_deref(),
            Some("ERR wrong number of arguments for 'zrem' command")
        );
        assert_eq!(redis_arity_error(&args("ZREM b m")), None);
        assert!(redis_arity_error(&args("HGET h")).is_some());
        assert_eq!(redis_arity_error(&args("NOSUCHCOMMAND")), None);
    }
}
