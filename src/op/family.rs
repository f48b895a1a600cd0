//! Command families: what a dashboard groups requests by (the `family`
//! label of `/metrics`, the per-family lines of INFO).

/// Command families, the `family` label: what a dashboard groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Get,
    Set,
    Delete,
    Arith,
    Touch,
    Keys,
    Flush,
    /// Commands forwarded to redis as they came that are none of the above
    /// (hashes, lists, scripts...).
    Other,
}

impl Family {
    pub const ALL: [Family; 8] = [
        Family::Get,
        Family::Set,
        Family::Delete,
        Family::Arith,
        Family::Touch,
        Family::Keys,
        Family::Flush,
        Family::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Get => "get",
            Family::Set => "set",
            Family::Delete => "delete",
            Family::Arith => "arith",
            Family::Touch => "touch",
            Family::Keys => "keys",
            Family::Flush => "flush",
            Family::Other => "other",
        }
    }

    /// The family of a memcached or redis command forwarded as it came.
    pub fn of_command(name: &[u8]) -> Family {
        const TABLE: &[(&str, Family)] = &[
            ("get", Family::Get),
            ("gets", Family::Get),
            ("gat", Family::Get),
            ("gats", Family::Get),
            ("mget", Family::Get),
            ("getex", Family::Get),
            ("getdel", Family::Get),
            ("set", Family::Set),
            ("add", Family::Set),
            ("replace", Family::Set),
            ("append", Family::Set),
            ("prepend", Family::Set),
            ("cas", Family::Set),
            ("setex", Family::Set),
            ("psetex", Family::Set),
            ("setnx", Family::Set),
            ("mset", Family::Set),
            ("msetnx", Family::Set),
            ("getset", Family::Set),
            ("delete", Family::Delete),
            ("del", Family::Delete),
            ("unlink", Family::Delete),
            ("incr", Family::Arith),
            ("decr", Family::Arith),
            ("incrby", Family::Arith),
            ("decrby", Family::Arith),
            ("touch", Family::Touch),
            ("expire", Family::Touch),
            ("pexpire", Family::Touch),
            ("expireat", Family::Touch),
            ("pexpireat", Family::Touch),
            ("persist", Family::Touch),
            ("ttl", Family::Touch),
            ("pttl", Family::Touch),
        ];
        TABLE
            .iter()
            .find(|(command, _)| command.as_bytes().eq_ignore_ascii_case(name))
            .map_or(Family::Other, |(_, family)| *family)
    }
}
