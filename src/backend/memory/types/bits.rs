//! Bit commands on strings (GETBIT, SETBIT, BITCOUNT, BITPOS, BITOP), as
//! redis 7.0 answers them. Bit 0 is the most significant bit of the first
//! byte.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::super::shard::Stored;
use super::args::{self, int, is};
use super::{Ctx, Keyspace, Out};
use crate::op::{Expiry, Item};

/// The largest string SETBIT may make: redis's 512 MiB.
const MAX_BITS: u64 = 512 * 1024 * 1024 * 8;

pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    match name {
        b"getbit" => {
            let offset = bit_offset(&ctx.args[2])?;
            let value = string(space, ctx.key())?;
            Ok(Reply::Integer(i64::from(bit(&value, offset))))
        }
        b"setbit" => setbit(space, ctx),
        b"bitcount" => bitcount(space, ctx),
        b"bitpos" => bitpos(space, ctx),
        _ => bitop(space, ctx),
    }
}

fn bit_offset(arg: &[u8]) -> Result<u64, Reply> {
    let bad = || Reply::error("ERR bit offset is not an integer or out of range");
    let offset = int(arg).map_err(|_| bad())?;
    u64::try_from(offset)
        .ok()
        .filter(|&o| o < MAX_BITS)
        .ok_or_else(bad)
}

/// The string at `key` (empty when missing); WRONGTYPE for a collection.
fn string(space: &mut Keyspace<'_>, key: &[u8]) -> Result<Bytes, Reply> {
    match space.get(key)? {
        None => Ok(Bytes::new()),
        Some(stored) if stored.collection.is_some() => Err(args::wrong_type()),
        Some(stored) => Ok(stored.item.value.clone()),
    }
}

fn bit(value: &[u8], offset: u64) -> bool {
    let byte = (offset / 8) as usize;
    value
        .get(byte)
        .is_some_and(|b| b & (0x80 >> (offset % 8)) != 0)
}

fn setbit(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let offset = bit_offset(&args[2])?;
    let on = match args[3].as_ref() {
        b"1" => true,
        b"0" => false,
        _ => return Err(Reply::error("ERR bit is not an integer or out of range")),
    };
    let (flags, expiry) = match space.get(key)? {
        Some(stored) if stored.collection.is_some() => return Err(args::wrong_type()),
        Some(stored) => (stored.item.flags, stored.item.expiry),
        None => (0, Expiry::Never),
    };
    let needed = offset / 8 + 1;
    if !space.has_room(key, needed)? {
        return Err(args::out_of_memory());
    }
    let mut value = string(space, key)?.to_vec();
    if value.len() < needed as usize {
        value.resize(needed as usize, 0);
    }
    let was = bit(&value, offset);
    let mask = 0x80 >> (offset % 8);
    let byte = &mut value[(offset / 8) as usize];
    *byte = if on { *byte | mask } else { *byte & !mask };
    write_string(space, key, Bytes::from(value), flags, expiry)?;
    Ok(Reply::Integer(i64::from(was)))
}

fn write_string(
    space: &mut Keyspace<'_>,
    key: &[u8],
    value: Bytes,
    flags: u32,
    expiry: Expiry,
) -> Result<(), Reply> {
    let item = Item {
        value,
        flags,
        cas: space.backend.new_cas(),
        expiry,
    };
    space.replace(key, Stored::string(item))
}

/// A `start end [BYTE|BIT]` range over `len` bytes, as positions in units
/// of bits: `None` when it is empty. `None` range given: the whole string.
fn range(args: &[Bytes], len: usize) -> Result<Option<(u64, u64)>, Reply> {
    let bits = match args.get(2) {
        None => false,
        Some(unit) if is(unit, "byte") => false,
        Some(unit) if is(unit, "bit") => true,
        Some(_) => return Err(args::syntax()),
    };
    let total = if bits { len as i64 * 8 } else { len as i64 };
    let (start, end) = match args {
        [] => (0, total - 1),
        [start] => (int(start)?, total - 1),
        [start, end, ..] => (int(start)?, int(end)?),
    };
    let start = if start < 0 {
        (total + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (total + end).max(0) } else { end };
    let end = end.min(total - 1);
    if total == 0 || start > end {
        return Ok(None);
    }
    let scale = if bits { 1 } else { 8 };
    Ok(Some((start as u64 * scale, end as u64 * scale + scale - 1)))
}

fn bitcount(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = &ctx.args[2..];
    if args.len() == 1 || args.len() > 3 {
        return Err(args::syntax());
    }
    let value = string(space, ctx.key())?;
    let Some((first, last)) = range(args, value.len())? else {
        return Ok(Reply::Integer(0));
    };
    let count = (first..=last).filter(|&b| bit(&value, b)).count();
    Ok(Reply::Integer(count as i64))
}

fn bitpos(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = &ctx.args[3..];
    let wanted = match ctx.args[2].as_ref() {
        b"1" => true,
        b"0" => false,
        _ => return Err(Reply::error("ERR The bit argument must be 1 or 0.")),
    };
    if args.len() > 3 {
        return Err(args::syntax());
    }
    let value = string(space, ctx.key())?;
    if value.is_empty() {
        // A missing key is all zeros.
        return Ok(Reply::Integer(if wanted { -1 } else { 0 }));
    }
    let Some((first, last)) = range(args, value.len())? else {
        return Ok(Reply::Integer(-1));
    };
    if let Some(at) = (first..=last).find(|&b| bit(&value, b) == wanted) {
        return Ok(Reply::Integer(at as i64));
    }
    // Looking for a clear bit with no end given: the first bit past the
    // string, which reads as 0 (redis's rule).
    let end_given = args.len() >= 2;
    Ok(Reply::Integer(match (wanted, end_given) {
        (false, false) => value.len() as i64 * 8,
        _ => -1,
    }))
}

fn bitop(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let op = args[1].to_ascii_lowercase();
    let sources = &args[3..];
    if !matches!(op.as_slice(), b"and" | b"or" | b"xor" | b"not") {
        return Err(args::syntax());
    }
    if op == b"not" && sources.len() != 1 {
        return Err(Reply::error(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut values = Vec::with_capacity(sources.len());
    for key in sources {
        values.push(string(space, key)?);
    }
    let len = values.iter().map(Bytes::len).max().unwrap_or(0);
    let byte_at = |v: &Bytes, i: usize| v.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let mut bytes = values.iter().map(|v| byte_at(v, i));
            let first = bytes.next().unwrap_or(0);
            match op.as_slice() {
                b"and" => bytes.fold(first, |a, b| a & b),
                b"or" => bytes.fold(first, |a, b| a | b),
                b"xor" => bytes.fold(first, |a, b| a ^ b),
                _ => !first,
            }
        })
        .collect();
    let destination = &args[2];
    if result.is_empty() {
        space.remove(destination)?;
        return Ok(Reply::Integer(0));
    }
    write_string(space, destination, Bytes::from(result), 0, Expiry::Never)?;
    Ok(Reply::Integer(len as i64))
}
