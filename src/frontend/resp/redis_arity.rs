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
