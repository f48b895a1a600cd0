//! Key → backend selection: a pure function over rules compiled once.

use crate::config::RouteConfig;
use crate::op::{now_ms, Expiry};
use crate::pattern::glob_match;

#[derive(Debug)]
enum Matcher {
    Prefix(Vec<u8>),
    Glob(Vec<u8>),
    Regex(regex::bytes::Regex),
    /// `glob = "*"`: matches everything without looking at the key.
    Any,
    /// `django = "..."`: `<key_prefix>:<digits>:<prefix>...`, any version.
    Django {
        key_prefix: Vec<u8>,
        prefix: Vec<u8>,
    },
}

impl Matcher {
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Matcher::Prefix(prefix) => key.starts_with(prefix),
            Matcher::Glob(pattern) => glob_match(pattern, key),
            Matcher::Regex(regex) => regex.is_match(key),
            Matcher::Any => true,
            Matcher::Django { key_prefix, prefix } => (|| {
                let rest = key.strip_prefix(&key_prefix[..])?.strip_prefix(b":")?;
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let rest = rest[digits..].strip_prefix(b":").filter(|_| digits > 0)?;
                Some(rest.starts_with(prefix))
            })()
            .unwrap_or(false),
        }
    }
}

/// A route's bounds on the TTLs set through it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlLimits {
    pub min_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

impl TtlLimits {
    pub fn is_none(&self) -> bool {
        self.min_ms.is_none() && self.max_ms.is_none()
    }

    /// `expiry` within the limits; an already expired one (a delete by TTL) stays so.
    pub fn apply(&self, expiry: Expiry) -> Expiry {
        if self.is_none() {
            return expiry;
        }
        let now = now_ms();
        if expiry.is_expired_at(now) {
            return expiry;
        }
        let mut at = match expiry {
            Expiry::Never => u64::MAX,
            Expiry::At(at) => at,
        };
        if let Some(max) = self.max_ms {
            at = at.min(now.saturating_add(max));
        }
        if let Some(min) = self.min_ms {
            at = at.max(now.saturating_add(min));
        }
        if at == u64::MAX {
            Expiry::Never
        } else {
            Expiry::At(at)
        }
    }
}

/// Ordered rules; the first that matches a key decides its backend or policy.
#[derive(Debug)]
pub struct RouteTable {
    rules: Vec<(Matcher, usize)>,
    /// Per rule, its TTL limits.
    limits: Vec<TtlLimits>,
}

impl RouteTable {
    /// Compiles validated routes; `target_index` maps a backend or policy
    /// name to its entry.
    pub fn compile(routes: &[RouteConfig], target_index: impl Fn(&str) -> usize) -> Self {
        let rules = routes
            .iter()
            .map(|route| {
                let matcher = match (&route.prefix, &route.glob, &route.regex, &route.django) {
                    (Some(prefix), ..) => Matcher::Prefix(prefix.as_bytes().to_vec()),
                    (_, Some(glob), ..) if glob == "*" => Matcher::Any,
                    (_, Some(glob), ..) => Matcher::Glob(glob.as_bytes().to_vec()),
                    (_, _, Some(regex), _) => Matcher::Regex(
                        regex::bytes::Regex::new(regex).expect("validated by Config::validate"),
                    ),
                    (.., Some(prefix)) => Matcher::Django {
                        key_prefix: route.key_prefix.clone().unwrap_or_default().into_bytes(),
                        prefix: prefix.as_bytes().to_vec(),
                    },
                    _ => unreachable!("validated by Config::validate"),
                };
                (matcher, target_index(route.target()))
            })
            .collect();
        let limits = routes
            .iter()
            .map(|route| TtlLimits {
                min_ms: route.min_ttl_seconds.map(|s| s.saturating_mul(1000)),
                max_ms: route.max_ttl_seconds.map(|s| s.saturating_mul(1000)),
            })
            .collect();
        Self { rules, limits }
    }

    /// Whether no route has TTL limits.
    pub fn has_no_limits(&self) -> bool {
        self.limits.iter().all(TtlLimits::is_none)
    }

    /// The target entry for `key` and its route's TTL limits.
    pub fn route_with_limits(&self, key: &[u8]) -> Option<(usize, TtlLimits)> {
        let rule = self.rule_for(key)?;
        Some((self.rules[rule].1, self.limits[rule]))
    }

    /// The index of the route `key` takes, or None if no rule matches.
    pub fn rule_for(&self, key: &[u8]) -> Option<usize> {
        self.rules
            .iter()
            .position(|(matcher, _)| matcher.matches(key))
    }

    /// The target entry for `key`, or None if no rule matches.
    pub fn route(&self, key: &[u8]) -> Option<usize> {
        Some(self.rules[self.rule_for(key)?].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        prefix: Option<&str>,
        glob: Option<&str>,
        regex: Option<&str>,
        backend: &str,
    ) -> RouteConfig {
        RouteConfig {
            prefix: prefix.map(Into::into),
            glob: glob.map(Into::into),
            regex: regex.map(Into::into),
            django: None,
            key_prefix: None,
            min_ttl_seconds: None,
            max_ttl_seconds: None,
            backend: Some(backend.into()),
            policy: None,
            protected: None,
            listener: None,
        }
    }

    #[test]
    fn first_match_wins() {
        let routes = vec![
            route(Some(":1:django.contrib.sessions."), None, None, "sessions"),
            route(None, Some("user_pk_*_restrict"), None, "users"),
            route(None, None, Some(r"^:\d+:views\."), "views"),
            route(None, Some("*"), None, "rest"),
        ];
        let names = ["sessions", "users", "views", "rest"];
        let table = RouteTable::compile(&routes, |name| {
            names.iter().position(|n| *n == name).unwrap()
        });
        let cases: &[(&[u8], Option<usize>)] = &[
            (b":1:django.contrib.sessions.cacheabc", Some(0)),
            (b":1:django.contrib.sessions.cached_dbxyz", Some(0)),
            (b"user_pk_7_restrict", Some(1)),
            (b":12:views.decorators", Some(2)),
            (b":1:other", Some(3)),
            (b"", Some(3)),
        ];
        for (key, want) in cases {
            assert_eq!(table.route(key), *want, "{}", String::from_utf8_lossy(key));
        }
        let only_sessions = RouteTable::compile(&routes[..1], |_| 0);
        assert_eq!(only_sessions.route(b"other"), None);
    }

    #[test]
    fn django_matchers_cover_every_version() {
        let mut sessions = route(None, None, None, "s");
        sessions.django = Some("django.contrib.sessions.".into());
        let mut horizon = route(None, None, None, "h");
        horizon.django = Some("".into());
        horizon.key_prefix = Some("horizon".into());
        let table = RouteTable::compile(&[sessions, horizon], |name| usize::from(name == "h"));
        let cases: &[(&[u8], Option<usize>)] = &[
            (b":1:django.contrib.sessions.cacheabc", Some(0)),
            (b":42:django.contrib.sessions.cached_db1", Some(0)),
            (b"::django.contrib.sessions.x", None),
            (b":1x:django.contrib.sessions.x", None),
            (b"django.contrib.sessions.x", None),
            (b"horizon:3:anything", Some(1)),
            (b"horizon:3", None),
            (b"horizonx:3:a", None),
        ];
        for (key, want) in cases {
            assert_eq!(table.route(key), *want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn ttl_limits_cap_and_raise_but_keep_deletes() {
        let limits = TtlLimits {
            min_ms: Some(60_000),
            max_ms: Some(3_600_000),
        };
        let now = now_ms();
        let within = |expiry: Expiry, low: u64, high: u64| match limits.apply(expiry) {
            Expiry::At(at) => (now + low..=now + high + 50).contains(&at),
            Expiry::Never => false,
        };
        assert!(within(Expiry::Never, 3_600_000, 3_600_000));
        assert!(within(Expiry::At(now + 7_200_000), 3_600_000, 3_600_000));
        assert!(within(Expiry::At(now + 1_000), 60_000, 60_000));
        assert!(within(Expiry::At(now + 120_000), 120_000, 120_000));
        assert_eq!(limits.apply(Expiry::EXPIRED), Expiry::EXPIRED);
        assert_eq!(TtlLimits::default().apply(Expiry::Never), Expiry::Never);
    }
}
