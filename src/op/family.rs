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
}
