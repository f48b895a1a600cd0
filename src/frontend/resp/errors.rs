//! redis's error replies, word for word, and the reading of an integer
//! argument as redis reads it.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use crate::backend::BackendError;
use crate::router::RouteError;

pub(super) fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// redis's exact wording, argument previews included.
pub(super) fn unknown_command(args: &[Bytes]) -> Reply {
    let preview: String = args[1..]
        .iter()
        .take(20)
        .map(|a| format!("'{}' ", String::from_utf8_lossy(&a[..a.len().min(128)])))
        .collect();
    Reply::error(format!(
        "ERR unknown command '{}', with args beginning with: {preview}",
        String::from_utf8_lossy(&args[0][..args[0].len().min(128)])
    ))
}

pub(super) fn not_on_this_route(name: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR '{}' works only on keys that all route to one redis backend or one memory backend \
         (redis's hashes, lists, sets and sorted sets live there; SQL, memcached and policy \
         routes hold strings); these do not",
        String::from_utf8_lossy(&name[..name.len().min(64)]).to_ascii_uppercase()
    ))
}

pub(super) fn not_one_redis(name: &str) -> Reply {
    if super::listening::names_channels(name) {
        return Reply::error(format!(
            "ERR '{}' names channels: it is forwarded to the one redis server this listener's \
             routes reach (not a Redis Cluster), where SUBSCRIBE listens; these reach none or \
             several",
            name.to_ascii_uppercase()
        ));
    }
    Reply::error(format!(
        "ERR '{}' names no key Keyway can route by: it is forwarded only when every route of \
         this listener goes to one redis backend (not a Redis Cluster); these do not",
        name.to_ascii_uppercase()
    ))
}

pub(super) fn syntax_error() -> Reply {
    Reply::error("ERR syntax error")
}

pub(super) fn not_an_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

/// redis's `string2ll` on an argument.
pub(super) fn parse_i64(arg: &[u8]) -> Result<i64, Reply> {
    let text = std::str::from_utf8(arg).map_err(|_| not_an_integer())?;
    let value: i64 = text.parse().map_err(|_| not_an_integer())?;
    if value.to_string() != text {
        return Err(not_an_integer());
    }
    Ok(value)
}

impl From<RouteError> for Reply {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::Backend(BackendError::NotAnInteger) => not_an_integer(),
            RouteError::Backend(BackendError::Overflow) => {
                Reply::error("ERR increment or decrement would overflow")
            }
            RouteError::Backend(BackendError::WrongType) => {
                Reply::error(BackendError::WrongType.to_string())
            }
            RouteError::Backend(BackendError::OutOfMemory) => {
                Reply::error("OOM value is larger than the memory backend accepts for one item")
            }
            other => Reply::error(format!("ERR {other}")),
        }
    }
}
