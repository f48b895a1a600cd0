//! Commands with options, typed: each is parsed from its arguments here,
//! whole, before anything runs (as mini-redis's `Command::from_frame`), so
//! a handler receives a `Set` or an `Expire`, never `args[3..]`, and an
//! option error is answered before any store is touched. Errors are
//! redis's, word for word, in redis's order (HELLO's options before its
//! NOAUTH, a client name checked before AUTH).
//!
//! Arity was checked against the command table before parsing, so the
//! fixed positions (`args[1]`, `args[2]`) exist.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

mod connection;

pub(super) use connection::{Client, Hello, Kill};

use super::commands::{KeyCmd, StringCmd};
use super::{parse_i64, syntax_error, wrong_arity};
use crate::op::{now_ms, Db, ExpireCondition, Expiry, ExpiryUpdate, StoreMode, DATABASES};

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`
#[derive(Debug, PartialEq)]
pub(super) struct Set {
    pub key: Bytes,
    pub value: Bytes,
    pub mode: StoreMode,
    pub expiry: ExpiryUpdate,
    /// GET: the old value is the reply.
    pub get: bool,
}

impl Set {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let mut mode = StoreMode::Set;
        let mut expiry = None;
        let mut get = false;
        let mut i = 3;
        while i < args.len() {
            let option = args[i].to_ascii_uppercase();
            match option.as_slice() {
                b"NX" if mode != StoreMode::Replace => mode = StoreMode::Add,
                b"XX" if mode != StoreMode::Add => mode = StoreMode::Replace,
                b"GET" => get = true,
                b"KEEPTTL" if expiry.is_none() => expiry = Some(ExpiryUpdate::Keep),
                b"EX" | b"PX" | b"EXAT" | b"PXAT" if expiry.is_none() && i + 1 < args.len() => {
                    let at = parse_expiry(&option, &args[i + 1], "set")?;
                    expiry = Some(ExpiryUpdate::Set(at));
                    i += 1;
                }
                _ => return Err(syntax_error()),
            }
            i += 1;
        }
        Ok(Set {
            key: args[1].clone(),
            value: args[2].clone(),
            mode,
            expiry: expiry.unwrap_or(ExpiryUpdate::Set(Expiry::Never)),
            get,
        })
    }
}

/// `SETEX key seconds value`, `PSETEX key milliseconds value`
#[derive(Debug, PartialEq)]
pub(super) struct SetEx {
    pub key: Bytes,
    pub expiry: Expiry,
    pub value: Bytes,
}

impl SetEx {
    pub fn parse(cmd: StringCmd, name: &str, args: &[Bytes]) -> Result<Self, Reply> {
        let unit: &[u8] = if cmd == StringCmd::SetEx {
            b"EX"
        } else {
            b"PX"
        };
        Ok(SetEx {
            key: args[1].clone(),
            expiry: parse_expiry(unit, &args[2], name)?,
            value: args[3].clone(),
        })
    }
}

/// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`
#[derive(Debug, PartialEq)]
pub(super) struct GetEx {
    pub key: Bytes,
    /// `None`: read only, the expiry untouched.
    pub expiry: Option<Expiry>,
}

impl GetEx {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let expiry = match &args[2..] {
            [] => None,
            [option] if option.eq_ignore_ascii_case(b"PERSIST") => Some(Expiry::Never),
            [unit, amount] if !unit.eq_ignore_ascii_case(b"PERSIST") => {
                Some(parse_expiry(unit, amount, "getex")?)
            }
            _ => return Err(syntax_error()),
        };
        Ok(GetEx {
            key: args[1].clone(),
            expiry,
        })
    }
}

/// `EXPIRE`/`PEXPIRE`/`EXPIREAT`/`PEXPIREAT key amount [NX|XX|GT|LT]`
#[derive(Debug, PartialEq)]
pub(super) struct Expire {
    pub key: Bytes,
    /// Absolute; a time in the past deletes the key (it expires at once).
    pub at: Expiry,
    pub condition: ExpireCondition,
}

impl Expire {
    pub fn parse(cmd: KeyCmd, name: &str, args: &[Bytes]) -> Result<Self, Reply> {
        let amount = parse_i64(&args[2])?;
        let mut condition = ExpireCondition::Always;
        for option in &args[3..] {
            let next = match option.to_ascii_uppercase().as_slice() {
                b"NX" => ExpireCondition::IfPersistent,
                b"XX" => ExpireCondition::IfVolatile,
                b"GT" => ExpireCondition::IfLater,
                b"LT" => ExpireCondition::IfEarlier,
                _ => {
                    return Err(Reply::error(format!(
                        "ERR Unsupported option {}",
                        String::from_utf8_lossy(option)
                    )))
                }
            };
            condition = combine_conditions(condition, next)?;
        }
        let invalid = || Reply::error(format!("ERR invalid expire time in '{name}' command"));
        let ms = match cmd {
            KeyCmd::Expire | KeyCmd::ExpireAt => amount.checked_mul(1000).ok_or_else(invalid)?,
            _ => amount,
        };
        let at = match cmd {
            KeyCmd::Expire | KeyCmd::PExpire => {
                ms.checked_add(now_ms() as i64).ok_or_else(invalid)?
            }
            _ => ms,
        };
        Ok(Expire {
            key: args[1].clone(),
            at: Expiry::At(at.max(0) as u64),
            condition,
        })
    }
}

/// EXPIRE's options together, as redis combines them.
fn combine_conditions(
    current: ExpireCondition,
    next: ExpireCondition,
) -> Result<ExpireCondition, Reply> {
    use ExpireCondition::*;
    match (current, next) {
        (Always, next) => Ok(next),
        (a, b) if a == b => Ok(a),
        (IfPersistent, _) | (_, IfPersistent) => Err(Reply::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        )),
        (IfLater, IfEarlier) | (IfEarlier, IfLater) => Err(Reply::error(
            "ERR GT and LT options at the same time are not compatible",
        )),
        // GT already refuses a key without expiry (it counts as infinitely
        // late), so XX adds nothing to it; LT does not, so XX+LT is its own case.
        (IfVolatile, IfLater) | (IfLater, IfVolatile) => Ok(IfLater),
        (IfVolatile, IfEarlier) | (IfEarlier, IfVolatile) => Ok(IfVolatileAndEarlier),
        (a, _) => Ok(a),
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`
#[derive(Debug, PartialEq)]
pub(super) struct Scan {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    /// TYPE: only keys holding this kind (lower case: `string`, `hash`...).
    pub kind: Option<Bytes>,
}

impl Scan {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let cursor: u64 = std::str::from_utf8(&args[1])
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Reply::error("ERR invalid cursor"))?;
        let mut scan = Scan {
            cursor,
            pattern: None,
            count: 10,
            kind: None,
        };
        for pair in args[2..].chunks(2) {
            let [option, value] = pair else {
                return Err(syntax_error());
            };
            match option.to_ascii_uppercase().as_slice() {
                b"MATCH" => scan.pattern = Some(value.clone()),
                b"COUNT" => match parse_i64(value)? {
                    count @ 1.. => scan.count = count as usize,
                    _ => return Err(syntax_error()),
                },
                b"TYPE" => scan.kind = Some(Bytes::from(value.to_ascii_lowercase())),
                _ => return Err(syntax_error()),
            }
        }
        Ok(scan)
    }
}

/// `FLUSHDB` / `FLUSHALL [ASYNC|SYNC]`: Keyway runs both synchronously, so
/// the mode is checked and not kept.
pub(super) fn check_flush_mode(args: &[Bytes]) -> Result<(), Reply> {
    match &args[1..] {
        [] => Ok(()),
        [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {
            Ok(())
        }
        _ => Err(syntax_error()),
    }
}

/// `COPY source destination [DB destination-db] [REPLACE]`
#[derive(Debug, PartialEq)]
pub(super) struct Copy {
    pub source: Bytes,
    pub destination: Bytes,
    /// `None`: the connection's database.
    pub db: Option<Db>,
    pub replace: bool,
}

impl Copy {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let mut copy = Copy {
            source: args[1].clone(),
            destination: args[2].clone(),
            db: None,
            replace: false,
        };
        let mut i = 3;
        while i < args.len() {
            match &args[i].to_ascii_uppercase()[..] {
                b"REPLACE" => copy.replace = true,
                b"DB" if i + 1 < args.len() => {
                    copy.db = Some(database(&args[i + 1])?);
                    i += 1;
                }
                _ => return Err(syntax_error()),
            }
            i += 1;
        }
        Ok(copy)
    }
}

/// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key`
#[derive(Debug, PartialEq)]
pub(super) struct Object {
    pub asks: ObjectField,
    pub key: Bytes,
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub(super) enum ObjectField {
    Encoding,
    RefCount,
    IdleTime,
    Freq,
}

impl Object {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let asks = match &sub[..] {
            "encoding" => ObjectField::Encoding,
            "refcount" => ObjectField::RefCount,
            "idletime" => ObjectField::IdleTime,
            "freq" => ObjectField::Freq,
            _ => return Err(unknown_subcommand(&args[1], "OBJECT")),
        };
        if args.len() != 3 {
            return Err(wrong_arity(&format!("object|{sub}")));
        }
        Ok(Object {
            asks,
            key: args[2].clone(),
        })
    }
}

/// `MEMORY USAGE key [SAMPLES count]`, the one MEMORY subcommand Keyway runs.
pub(super) fn memory_usage_key(args: &[Bytes]) -> Result<Bytes, Reply> {
    if !args[1].eq_ignore_ascii_case(b"usage") {
        return Err(unknown_subcommand(&args[1], "MEMORY"));
    }
    match args.len() {
        3 => {}
        5 if args[3].eq_ignore_ascii_case(b"samples") => {
            parse_i64(&args[4])?;
        }
        4 | 5 => return Err(syntax_error()),
        _ => return Err(wrong_arity("memory|usage")),
    }
    Ok(args[2].clone())
}

/// Parses an EX/PX/EXAT/PXAT amount into an absolute expiry; `command` names
/// the command in redis's "invalid expire time" error.
fn parse_expiry(unit: &[u8], amount: &[u8], command: &str) -> Result<Expiry, Reply> {
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    let amount = parse_i64(amount)?;
    if amount <= 0 {
        return Err(invalid());
    }
    let amount = amount as u64;
    let at = match unit.to_ascii_uppercase().as_slice() {
        b"EX" => amount
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(now_ms())),
        b"PX" => amount.checked_add(now_ms()),
        b"EXAT" => amount.checked_mul(1000),
        b"PXAT" => Some(amount),
        _ => return Err(syntax_error()),
    };
    // redis refuses expiries that overflow a signed 64-bit millisecond clock.
    at.filter(|&at| at <= i64::MAX as u64)
        .map(Expiry::At)
        .ok_or_else(invalid)
}

/// An argument redis reads with `getIntFromObjectOrReply` (SELECT's and
/// MOVE's database): a 64-bit integer, then refused outside 32 bits.
pub(super) fn int_argument(arg: &[u8]) -> Result<i32, Reply> {
    let value = parse_i64(arg)?;
    i32::try_from(value).map_err(|_| {
        Reply::error("ERR value is out of range, value must between -2147483648 and 2147483647")
    })
}

/// A database number argument (SELECT, MOVE, COPY ... DB).
pub(super) fn database(arg: &[u8]) -> Result<Db, Reply> {
    let db = i64::from(int_argument(arg)?);
    if !(0..i64::from(DATABASES)).contains(&db) {
        return Err(Reply::error("ERR DB index is out of range"));
    }
    Ok(db as Db)
}

pub(super) fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn error_of<T: std::fmt::Debug>(parsed: Result<T, Reply>) -> String {
        match parsed.expect_err("an error reply") {
            Reply::Error(text) => text.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_options_in_any_order_and_their_conflicts() {
        let set = Set::parse(&args("SET k v get NX pxat 5000")).unwrap();
        assert_eq!(set.mode, StoreMode::Add);
        assert!(set.get);
        assert_eq!(set.expiry, ExpiryUpdate::Set(Expiry::At(5000)));
        let plain = Set::parse(&args("SET k v")).unwrap();
        assert_eq!(plain.expiry, ExpiryUpdate::Set(Expiry::Never));
        for bad in [
            "SET k v NX XX",
            "SET k v EX 1 PX 1",
            "SET k v EX",
            "SET k v KEEPTTL EX 1",
        ] {
            assert_eq!(
                error_of(Set::parse(&args(bad))),
                "ERR syntax error",
                "{bad}"
            );
        }
        assert_eq!(
            error_of(Set::parse(&args("SET k v EX 0"))),
            "ERR invalid expire time in 'set' command"
        );
    }

    #[test]
    fn expire_conditions_combine_as_redis_combines_them() {
        let parse = |line| Expire::parse(KeyCmd::PExpireAt, "pexpireat", &args(line));
        assert_eq!(
            parse("PEXPIREAT k 10 XX LT").unwrap().condition,
            ExpireCondition::IfVolatileAndEarlier
        );
        assert_eq!(parse("PEXPIREAT k -5").unwrap().at, Expiry::At(0));
        assert_eq!(
            error_of(parse("PEXPIREAT k 10 NX GT")),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            error_of(parse("PEXPIREAT k 10 FOO")),
            "ERR Unsupported option FOO"
        );
    }

    #[test]
    fn scan_and_copy_options() {
        let scan = Scan::parse(&args("SCAN 7 COUNT 100 MATCH a* TYPE Hash")).unwrap();
        assert_eq!(
            scan,
            Scan {
                cursor: 7,
                pattern: Some(Bytes::from("a*")),
                count: 100,
                kind: Some(Bytes::from("hash"))
            }
        );
        assert_eq!(
            error_of(Scan::parse(&args("SCAN 0 COUNT 0"))),
            "ERR syntax error"
        );
        assert_eq!(error_of(Scan::parse(&args("SCAN x"))), "ERR invalid cursor");
        let copy = Copy::parse(&args("COPY a b REPLACE DB 3")).unwrap();
        assert_eq!((copy.db, copy.replace), (Some(3), true));
        assert_eq!(
            error_of(Copy::parse(&args("COPY a b DB 99"))),
            "ERR DB index is out of range"
        );
    }
}
