//! Key → backend selection: a pure function over rules compiled once.

use crate::config::RouteConfig;
use crate::pattern::glob_match;

#[derive(Debug)]
enum Matcher {
    Prefix(Vec<u8>),
    Glob(Vec<u8>),
    Regex(regex::bytes::Regex),
    /// `glob = "*"`: matches everything without looking at the key.
    Any,
}

impl Matcher {
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Matcher::Prefix(prefix) => key.starts_with(prefix),
            Matcher::Glob(pattern) => glob_match(pattern, key),
            Matcher::Regex(regex) => regex.is_match(key),
            Matcher::Any => true,
        }
    }
}

/// Ordered rules; the first that matches a key decides its backend or policy.
#[derive(Debug)]
pub struct RouteTable {
    rules: Vec<(Matcher, usize)>,
}

impl RouteTable {
    /// Compiles validated routes; `target_index` maps a backend or policy
    /// name to its slot.
    pub fn compile(routes: &[RouteConfig], target_index: impl Fn(&str) -> usize) -> Self {
        let rules = routes
            .iter()
            .map(|route| {
                let matcher = match (&route.prefix, &route.glob, &route.regex) {
                    (Some(prefix), _, _) => Matcher::Prefix(prefix.as_bytes().to_vec()),
                    (_, Some(glob), _) if glob == "*" => Matcher::Any,
                    (_, Some(glob), _) => Matcher::Glob(glob.as_bytes().to_vec()),
                    (_, _, Some(regex)) => Matcher::Regex(
                        regex::bytes::Regex::new(regex).expect("validated by Config::validate"),
                    ),
                    _ => unreachable!("validated by Config::validate"),
                };
                (matcher, target_index(route.target()))
            })
            .collect();
        Self { rules }
    }

    /// The target slot for `key`, or None if no rule matches.
    pub fn route(&self, key: &[u8]) -> Option<usize> {
        self.rules
            .iter()
            .find(|(matcher, _)| matcher.matches(key))
            .map(|(_, slot)| *slot)
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
            backend: Some(backend.into()),
            policy: None,
            protected: None,
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
}
