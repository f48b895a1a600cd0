//! `[[auth.users]] permissions`: what a RESP user may run, in redis's ACL
//! words (`ACL SETUSER` rules): `+@category`, `-@category`, `+command`,
//! `-command`, `+command|subcommand`, `allcommands`, `nocommands`,
//! `~pattern`, `allkeys`, `resetkeys`, `&pattern` (pub/sub channels),
//! `allchannels`, `resetchannels`. Rules apply left to right, as
//! redis's do. Categories are redis's own, read from a real redis-server's
//! `COMMAND` reply into `acl_categories.txt` (tests/tools/acl_categories.py),
//! so `-@dangerous` takes exactly what it takes on that redis. Refusals are
//! redis 7.0's `-NOPERM` replies.
//!
//! Compiled once per configuration load: a check is one lookup in a set.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// Every command and subcommand (`config|set`) with its categories.
static CATEGORIES: LazyLock<HashMap<&'static str, Vec<&'static str>>> = LazyLock::new(|| {
    include_str!("acl_categories.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().expect("a command name");
            (name, words.map(|c| c.trim_start_matches('@')).collect())
        })
        .collect()
});

/// Whether redis counts `name` a write (`@write`): what CLIENT PAUSE WRITE
/// holds back.
pub fn is_write(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    CATEGORIES
        .get(name.as_str())
        .is_some_and(|categories| categories.contains(&"write"))
}

/// Commands every user may run, as redis exempts its no-auth commands.
const ALWAYS: [&str; 3] = ["auth", "hello", "quit"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// `+@all`, `allcommands` (true); `-@all`, `nocommands` (false).
    All(bool),
    Category(bool, String),
    /// A command, or `command|subcommand`.
    Command(bool, String),
}

/// One user's compiled permissions.
#[derive(Debug, Clone)]
pub struct Permissions {
    /// The known commands (and subcommands) the rules allow.
    allowed: HashSet<&'static str>,
    /// Whether a command the table does not know is allowed (by `+@all`,
    /// the only rule that reaches commands redis added later).
    unknown: bool,
    /// Explicit `+name` / `-name` rules for names the table does not know.
    unknown_named: HashMap<String, bool>,
    /// `None`: every key (`allkeys`, `~*`).
    keys: Option<Vec<Vec<u8>>>,
    /// `None`: every pub/sub channel (`allchannels`, `&*`).
    channels: Option<Vec<Vec<u8>>>,
}

/// Why a command was refused: the reply redis 7.0 gives.
pub enum Refusal {
    Command(String),
    Key,
    Channel,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Command(name) => {
                format!("NOPERM this user has no permissions to run the '{name}' command")
            }
            Refusal::Key => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .to_string()
            }
            Refusal::Channel => "NOPERM this user has no permissions to access one of the \
                                 channels used as arguments"
                .to_string(),
        }
    }
}

impl Permissions {
    /// Compiles `rules` (space-separated, as after `ACL SETUSER <user>`);
    /// the error names the rule and what to write instead.
    pub fn parse(rules: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        // Every key until a rule says otherwise (a redis user made by ACL
        // SETUSER starts with none; Keyway's users without permissions
        // have all, and naming commands should not take keys away).
        let mut keys: Option<Vec<Vec<u8>>> = None;
        let mut all_keys_said = false;
        // Every channel until a rule says otherwise, as for keys.
        let mut channels: Option<Vec<Vec<u8>>> = None;
        for word in rules.split_whitespace() {
            let lower = word.to_ascii_lowercase();
            match lower.as_str() {
                _ if channel_rule(word, &lower, &mut channels) => {}
                "allcommands" | "+@all" => parsed.push(Rule::All(true)),
                "nocommands" | "-@all" => parsed.push(Rule::All(false)),
                "allkeys" | "~*" => {
                    keys = None;
                    all_keys_said = true;
                }
                "resetkeys" => {
                    keys = Some(Vec::new());
                    all_keys_said = false;
                }
                _ if word.starts_with('~') => {
                    if all_keys_said {
                        return Err(format!(
                            "{word:?} after allkeys means nothing (as in redis); write resetkeys first"
                        ));
                    }
                    keys.get_or_insert_with(Vec::new)
                        .push(word.as_bytes()[1..].to_vec());
                }
                _ if lower.starts_with("+@") || lower.starts_with("-@") => {
                    parsed.push(category_rule(word, &lower)?);
                }
                _ if lower.starts_with('+') || lower.starts_with('-') => {
                    parsed.push(Rule::Command(
                        lower.starts_with('+'),
                        lower[1..].to_string(),
                    ));
                }
                _ => {
                    return Err(format!(
                        "{word:?} is not a rule Keyway applies; write +@category, -@category, \
                         +command, -command, allcommands, nocommands, ~pattern, allkeys, \
                         resetkeys, &pattern, allchannels or resetchannels"
                    ))
                }
            }
        }
        let (allowed, unknown, unknown_named) = compile(&parsed);
        Ok(Self {
            allowed,
            unknown,
            unknown_named,
            keys,
            channels,
        })
    }

    /// Whether the command named `name` (and `subcommand`, for the
    /// containers redis files by subcommand, such as CONFIG and CLIENT)
    /// may run; the refusal if not.
    pub fn check_command(&self, name: &[u8], subcommand: Option<&[u8]>) -> Result<(), Refusal> {
        let mut buffer = [0u8; 64];
        let Some(name) = lowercase(name, &mut buffer) else {
            return self.verdict_unknown(&String::from_utf8_lossy(name).to_ascii_lowercase());
        };
        if ALWAYS.contains(&name) {
            return Ok(());
        }
        let full = subcommand
            .map(|sub| {
                format!(
                    "{name}|{}",
                    String::from_utf8_lossy(sub).to_ascii_lowercase()
                )
            })
            .filter(|full| CATEGORIES.contains_key(full.as_str()));
        let name = full.as_deref().unwrap_or(name);
        match CATEGORIES.get_key_value(name) {
            Some((known, _)) if self.allowed.contains(known) => Ok(()),
            Some(_) => Err(Refusal::Command(name.to_string())),
            None => self.verdict_unknown(name),
        }
    }

    fn verdict_unknown(&self, name: &str) -> Result<(), Refusal> {
        let container = name.split('|').next().unwrap_or(name);
        let allowed = self
            .unknown_named
            .get(name)
            .or_else(|| self.unknown_named.get(container))
            .copied()
            .unwrap_or(self.unknown);
        if allowed {
            Ok(())
        } else {
            Err(Refusal::Command(name.to_string()))
        }
    }

    /// Whether every one of `keys` matches one of the user's `~patterns`.
    pub fn check_keys<'a>(&self, mut keys: impl Iterator<Item = &'a [u8]>) -> Result<(), Refusal> {
        let Some(patterns) = &self.keys else {
            return Ok(());
        };
        if keys.all(|key| {
            patterns
                .iter()
                .any(|pattern| crate::pattern::glob_match(pattern, key))
        }) {
            Ok(())
        } else {
            Err(Refusal::Key)
        }
    }

    /// Whether the pub/sub channels a command names are the user's, as
    /// redis 7.0 checks them: a channel matches one of the `&patterns`; a
    /// PSUBSCRIBE pattern must be one of them, as written. Unsubscribing is
    /// always allowed.
    pub fn check_channels(&self, args: &[bytes::Bytes]) -> Result<(), Refusal> {
        let Some(patterns) = &self.channels else {
            return Ok(());
        };
        let is = |name: &str| args[0].eq_ignore_ascii_case(name.as_bytes());
        let (named, literal): (&[bytes::Bytes], bool) = match () {
            _ if is("publish") || is("spublish") => (args.get(1..2).unwrap_or_default(), false),
            _ if is("subscribe") || is("ssubscribe") => (&args[1..], false),
            _ if is("psubscribe") => (&args[1..], true),
            _ => return Ok(()),
        };
        let allowed = |channel: &bytes::Bytes| {
            patterns.iter().any(|pattern| match literal {
                true => pattern[..] == channel[..],
                false => crate::pattern::glob_match(pattern, channel),
            })
        };
        match named.iter().all(allowed) {
            true => Ok(()),
            false => Err(Refusal::Channel),
        }
    }

    /// Whether the user may touch any key at all without naming it (KEYS,
    /// SCAN, FLUSHDB...): only with every key allowed, as in redis.
    pub fn all_keys(&self) -> bool {
        self.keys.is_none()
    }
}

/// `&pattern`, `allchannels` or `resetchannels` applied to `channels`;
/// false: `word` is not one of them.
fn channel_rule(word: &str, lower: &str, channels: &mut Option<Vec<Vec<u8>>>) -> bool {
    match lower {
        "allchannels" | "&*" => *channels = None,
        "resetchannels" => *channels = Some(Vec::new()),
        _ if word.starts_with('&') => channels
            .get_or_insert_with(Vec::new)
            .push(word.as_bytes()[1..].to_vec()),
        _ => return false,
    }
    true
}

/// `+@category` or `-@category`, if redis has that category.
fn category_rule(word: &str, lower: &str) -> Result<Rule, String> {
    let category = &lower[2..];
    let known = CATEGORIES
        .values()
        .any(|categories| categories.contains(&category));
    if !known {
        return Err(format!(
            "{word:?}: redis has no ACL category {category:?} (e.g. read, write, \
             dangerous, scripting, admin, keyspace)"
        ));
    }
    Ok(Rule::Category(lower.starts_with('+'), category.to_string()))
}

/// What `rules` allow, read left to right as redis reads them: the set of
/// known commands allowed, whether an unknown command is (the last
/// allcommands or nocommands), and unknown commands named since.
fn compile(parsed: &[Rule]) -> (HashSet<&'static str>, bool, HashMap<String, bool>) {
    let decide = |name: &str, categories: &[&str]| {
        let container = name.split('|').next().unwrap_or(name);
        parsed.iter().fold(false, |allowed, rule| match rule {
            Rule::All(on) => *on,
            Rule::Category(on, category) if categories.contains(&category.as_str()) => *on,
            Rule::Command(on, named) if named == name || named == container => *on,
            _ => allowed,
        })
    };
    let allowed = CATEGORIES
        .iter()
        .filter(|(name, categories)| decide(name, categories))
        .map(|(name, _)| *name)
        .collect();
    let unknown = parsed
        .iter()
        .rev()
        .find_map(|rule| match rule {
            Rule::All(on) => Some(*on),
            _ => None,
        })
        .unwrap_or(false);
    let mut unknown_named = HashMap::new();
    for rule in parsed {
        match rule {
            Rule::Command(on, name) if !CATEGORIES.contains_key(name.as_str()) => {
                unknown_named.insert(name.clone(), *on);
            }
            Rule::All(_) => unknown_named.clear(),
            _ => {}
        }
    }
    (allowed, unknown, unknown_named)
}

/// The commands redis files by subcommand (CONFIG, CLIENT, SCRIPT...).
static CONTAINERS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    CATEGORIES
        .keys()
        .filter_map(|name| name.split_once('|').map(|(container, _)| container))
        .collect()
});

impl Permissions {
    /// [`Self::check_command`] for a request's arguments.
    pub fn check(&self, args: &[bytes::Bytes]) -> Result<(), Refusal> {
        let mut buffer = [0u8; 64];
        let subcommand = lowercase(&args[0], &mut buffer)
            .filter(|name| CONTAINERS.contains(name))
            .and_then(|_| args.get(1));
        self.check_command(&args[0], subcommand.map(|s| &s[..]))
    }
}

fn lowercase<'a>(name: &[u8], buffer: &'a mut [u8; 64]) -> Option<&'a str> {
    let buffer = buffer.get_mut(..name.len())?;
    for (out, byte) in buffer.iter_mut().zip(name) {
        *out = byte.to_ascii_lowercase();
    }
    std::str::from_utf8(buffer).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(rules: &str, command: &str) -> bool {
        let permissions = Permissions::parse(rules).unwrap();
        let mut words = command.split(' ');
        let name = words.next().unwrap();
        permissions
            .check_command(name.as_bytes(), words.next().map(str::as_bytes))
            .is_ok()
    }

    #[test]
    fn categories_and_commands_apply_left_to_right_as_redis() {
        let horizon = "+@all -@dangerous -@scripting";
        for allowed in [
            "GET",
            "set",
            "DEL",
            "EXPIRE",
            "client setname",
            "CLIENT SETINFO",
        ] {
            assert!(allows(horizon, allowed), "{allowed}");
        }
        for refused in [
            "EVAL",
            "EVALSHA",
            "FLUSHALL",
            "config set",
            "CONFIG GET",
            "DEBUG",
            "script load",
            "MIGRATE",
            "RESTORE",
            "KEYS",
            "client kill",
            "FCALL",
        ] {
            assert!(!allows(horizon, refused), "{refused}");
        }
        assert!(allows("+@read", "GET"));
        assert!(!allows("+@read", "SET"));
        assert!(allows("+@read +@write -@dangerous", "SET"));
        assert!(!allows("+@read +@write -@dangerous", "FLUSHDB"));
        assert!(allows("+@all -eval +eval", "EVAL"));
        assert!(!allows("+@all -client", "client setname"));
        assert!(allows("-@all +client|setname", "client setname"));
        assert!(!allows("-@all +client|setname", "client kill"));
        // Commands redis 7.0 does not know: only +@all (or naming them) reaches them.
        assert!(!allows("+@read +@write", "NEWCOMMAND"));
        assert!(allows("+@all", "NEWCOMMAND"));
        assert!(!allows("+@all -newcommand", "NEWCOMMAND"));
        // AUTH and HELLO always run, as redis's no-auth commands.
        assert!(allows("nocommands", "AUTH"));
        assert_eq!(
            Permissions::parse("+@all")
                .unwrap()
                .check_command(b"CONFIG", Some(b"SET"))
                .map_err(|r| r.message())
                .err(),
            None
        );
        let refusal = Permissions::parse("+@all -@dangerous")
            .unwrap()
            .check_command(b"CONFIG", Some(b"SET"))
            .err()
            .unwrap();
        assert_eq!(
            refusal.message(),
            "NOPERM this user has no permissions to run the 'config|set' command"
        );
        assert!(Permissions::parse("+@nosuch").is_err());
        assert!(Permissions::parse("on").is_err());
    }

    #[test]
    fn permissions_are_also_read_as_acl() {
        let config = crate::config::Config::from_toml(
            "[listen]\nresp = \"127.0.0.1:6379\"\n\
             [[auth.users]]\nname = \"horizon\"\npassword = \"p\"\nacl = \"+@read\"\n\
             [backends.m]\nurl = \"memory://\"\n[[routes]]\nglob = \"*\"\nbackend = \"m\"\n",
        )
        .unwrap();
        assert_eq!(config.auth.users[0].permissions.as_deref(), Some("+@read"));
    }

    #[test]
    fn key_patterns_are_redis_globs() {
        let permissions = Permissions::parse("+@all ~:1:django.contrib.sessions* ~other").unwrap();
        assert!(permissions
            .check_keys([&b":1:django.contrib.sessions.cacheabc"[..]].into_iter())
            .is_ok());
        assert!(permissions
            .check_keys([&b":1:django.contrib.sessions.cacheabc"[..], b"x"].into_iter())
            .is_err());
        assert!(!permissions.all_keys());
        assert!(Permissions::parse("+@all").unwrap().all_keys());
        assert!(!Permissions::parse("+@all resetkeys").unwrap().all_keys());
        assert!(Permissions::parse("allkeys ~x").is_err());
        assert!(Permissions::parse("+@all ~*").unwrap().all_keys());
        assert!(Permissions::parse("+@all allkeys").unwrap().all_keys());
    }
}
