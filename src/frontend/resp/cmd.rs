//! What Keyway runs itself, by the module that runs it: the [`Cmd`] the
//! command table ([`super::commands`]) names for each command it serves, so
//! that dispatch never matches on names again.

/// A command Keyway runs, by the module that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// strings.rs
    Strings(StringCmd),
    /// keys.rs
    Keys(KeyCmd),
    /// scripts.rs
    Scripts(ScriptCmd),
    /// items.rs: RENAME, COPY, MOVE, OBJECT, MEMORY where Keyway runs them
    Items(ItemCmd),
    /// MULTI, EXEC, DISCARD (mod.rs)
    Transaction(TxCmd),
    /// connection.rs: the connection commands, INFO, COMMAND, CLIENT
    Connection(ConnCmd),
    /// server.rs: what tools ask a server about itself
    Server(ServerCmd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringCmd {
    Get,
    Set,
    SetNx,
    SetEx,
    PSetEx,
    GetDel,
    GetEx,
    MGet,
    MSet,
    MSetNx,
    Incr,
    Decr,
    IncrBy,
    DecrBy,
    Append,
    StrLen,
    GetSet,
    GetRange,
    SetRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCmd {
    Del,
    Unlink,
    Exists,
    Touch,
    Expire,
    PExpire,
    ExpireAt,
    PExpireAt,
    Ttl,
    PTtl,
    Persist,
    Type,
    Keys,
    Scan,
    DbSize,
    FlushDb,
    FlushAll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxCmd {
    Multi,
    Exec,
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCmd {
    Eval,
    EvalSha,
    Script,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnCmd {
    Hello,
    Auth,
    Ping,
    Echo,
    Quit,
    Reset,
    Select,
    Client,
    Command,
    Info,
    Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemCmd {
    Rename,
    RenameNx,
    Copy,
    Move,
    Object,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCmd {
    Role,
    LastSave,
    Config,
}
