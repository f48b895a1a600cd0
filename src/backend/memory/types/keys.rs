//! Commands on any key, answered here on the memory store because a key
//! may hold a collection (TYPE, RENAME, RENAMENX, COPY, OBJECT, MEMORY
//! USAGE), and INCRBYFLOAT.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::super::shard::Stored;
use super::args::{self, float_text, is};
use super::{Ctx, Keyspace, Out};
use crate::op::{Expiry, Item};

/// `None`: Keyway's own handler answers (a string's OBJECT or MEMORY
/// USAGE, COPY to another database).
pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Option<Out> {
    let args = ctx.args;
    match name {
        b"type" => Some(Ok(Reply::Simple(Bytes::from_static(
            match space.get(&args[1]) {
                Err(error) => return Some(Err(error)),
                Ok(None) => "none",
                Ok(Some(stored)) => stored
                    .collection
                    .as_ref()
                    .map_or("string", |c| c.type_name()),
            }
            .as_bytes(),
        )))),
        b"rename" | b"renamenx" => Some(rename(space, &args[1], &args[2], name == b"renamenx")),
        b"copy" => copy(space, args),
        b"object" => {
            let subcommand = args[1].to_ascii_lowercase();
            let key = args.get(2)?;
            let collection = space.get(key).ok()??.collection.as_deref()?;
            Some(match subcommand.as_slice() {
                b"encoding" => Ok(Reply::bulk(collection.encoding())),
                b"refcount" => Ok(Reply::Integer(1)),
                b"idletime" => Ok(Reply::Integer(0)),
                _ => return None,
            })
        }
        b"memory" => {
            let key = args.get(2).filter(|_| is(&args[1], "usage"))?;
            let weight = space.get(key).ok()??.collection.as_deref()?.weight();
            Some(Ok(Reply::Integer((weight + key.len() as u64 + 48) as i64)))
        }
        b"expiretime" | b"pexpiretime" => {
            Some(expire_time(space, &args[1], name == b"pexpiretime"))
        }
        _ => None,
    }
}

/// EXPIRETIME/PEXPIRETIME: when the key expires, as a Unix time; -1 with
/// no expiry, -2 when missing.
fn expire_time(space: &mut Keyspace<'_>, key: &[u8], millis: bool) -> Out {
    Ok(Reply::Integer(match space.get(key)? {
        None => -2,
        Some(stored) => match stored.item.expiry {
            Expiry::Never => -1,
            Expiry::At(ms) if millis => ms as i64,
            Expiry::At(ms) => (ms / 1000) as i64,
        },
    }))
}

fn rename(space: &mut Keyspace<'_>, from: &Bytes, to: &Bytes, only_if_free: bool) -> Out {
    if space.get(from)?.is_none() {
        return Err(args::no_such_key());
    }
    if from == to {
        return Ok(match only_if_free {
            true => Reply::Integer(0),
            false => Reply::ok(),
        });
    }
    if only_if_free && space.get(to)?.is_some() {
        return Ok(Reply::Integer(0));
    }
    let key_ref = space.key_ref(from);
    let Some((_, stored)) = space.shard(from)?.remove(&key_ref) else {
        return Err(args::no_such_key());
    };
    space.replace(to, stored)?;
    Ok(match only_if_free {
        true => Reply::Integer(1),
        false => Reply::ok(),
    })
}

/// COPY source destination [REPLACE] (with DB: Keyway's own COPY).
fn copy(space: &mut Keyspace<'_>, args: &[Bytes]) -> Option<Out> {
    let mut replace = false;
    for option in &args[3..] {
        match () {
            _ if is(option, "replace") => replace = true,
            _ => return None,
        }
    }
    let (from, to) = (&args[1], &args[2]);
    if from == to {
        return Some(Err(Reply::error(
            "ERR source and destination objects are the same",
        )));
    }
    let result = (|| {
        let Some(stored) = space.get(from)?.cloned() else {
            return Ok(Reply::Integer(0));
        };
        if !replace && space.get(to)?.is_some() {
            return Ok(Reply::Integer(0));
        }
        let copy = Stored {
            item: Item {
                cas: space.backend.new_cas(),
                ..stored.item
            },
            collection: stored.collection,
        };
        space.replace(to, copy)?;
        Ok(Reply::Integer(1))
    })();
    Some(result)
}

/// INCRBYFLOAT key increment: the string read as a float, its TTL kept.
pub(super) fn incrbyfloat(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let delta = args::float(&args[2])?;
    let (current, flags, expiry) = match space.get(key)? {
        None => (0.0, 0, Expiry::Never),
        Some(stored) if stored.collection.is_some() => return Err(args::wrong_type()),
        Some(stored) => (
            args::float(&stored.item.value)?,
            stored.item.flags,
            stored.item.expiry,
        ),
    };
    let value = current + delta;
    if !value.is_finite() {
        return Err(Reply::error("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(float_text(value));
    let item = Item {
        value: text.clone(),
        flags,
        cas: space.backend.new_cas(),
        expiry,
    };
    space.replace(key, Stored::string(item))?;
    Ok(Reply::Bulk(text))
}
