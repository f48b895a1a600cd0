//! List commands (LPUSH ... LMPOP). The blocking ones (BLPOP, BLMOVE...)
//! are not here: they wait for another client's push (see README).

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::args::{self, count, int, is, numkeys, owned};
use super::collections::List;
use super::{Ctx, Keyspace, Out};

pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"lpush" | b"rpush" | b"lpushx" | b"rpushx" => {
            let only_existing = name.ends_with(b"x");
            let list = match only_existing {
                true => space.take::<List>(key)?,
                false => Some(space.take_or_new::<List>(key)?),
            };
            let Some(mut list) = list else {
                return Ok(Reply::Integer(0));
            };
            for item in &args[2..] {
                list.value.push(owned(item), name[0] == b'l');
            }
            let len = list.value.len();
            space.put(key, list)?;
            Ok(Reply::Integer(len as i64))
        }
        b"lpop" | b"rpop" => pop(space, ctx, name[0] == b'l'),
        _ => more(name, space, ctx),
    }
}

/// The rest: reads, and changes in place.
fn more(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"llen" => Ok(Reply::Integer(
            space.read::<List>(key)?.map_or(0, List::len) as i64,
        )),
        b"lrange" => {
            let (start, stop) = (int(&args[2])?, int(&args[3])?);
            let Some(list) = space.read::<List>(key)? else {
                return Ok(Reply::Array(Vec::new()));
            };
            let range = args::index_range(start, stop, list.len());
            Ok(Reply::Array(
                range
                    .map(|at| Reply::Bulk(list.items()[at].clone()))
                    .collect(),
            ))
        }
        b"lindex" => {
            let at = int(&args[2])?;
            let list = space.read::<List>(key)?;
            let item = list.and_then(|l| index(at, l.len()).map(|i| l.items()[i].clone()));
            Ok(Reply::bulk_or_null(item))
        }
        b"lset" => {
            let at = int(&args[2])?;
            let Some(mut list) = space.take::<List>(key)? else {
                return Err(args::no_such_key());
            };
            let result = match index(at, list.value.len()) {
                Some(at) => {
                    list.value.set(at, owned(&args[3]));
                    Ok(Reply::ok())
                }
                None => Err(Reply::error("ERR index out of range")),
            };
            space.put(key, list)?;
            result
        }
        _ => reshape(name, space, ctx),
    }
}

/// LREM, LTRIM, LINSERT, LPOS, LMOVE, LMPOP.
fn reshape(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"lrem" => lrem(space, ctx),
        b"ltrim" => {
            let (start, stop) = (int(&args[2])?, int(&args[3])?);
            let Some(mut list) = space.take::<List>(key)? else {
                return Ok(Reply::ok());
            };
            let keep = args::index_range(start, stop, list.value.len());
            list.value.retain(|at, _| keep.contains(&at));
            space.put(key, list)?;
            Ok(Reply::ok())
        }
        b"linsert" => linsert(space, ctx),
        b"lpos" => lpos(space, ctx),
        b"lmove" | b"rpoplpush" => {
            let (from_left, to_left) = match name {
                b"rpoplpush" => (false, true),
                _ => (side(&args[3])?, side(&args[4])?),
            };
            lmove(space, &args[1], &args[2], from_left, to_left)
        }
        b"lmpop" => lmpop(space, ctx),
        _ => Err(args::wrong_arity(name)),
    }
}

/// LEFT or RIGHT: whether it is the left.
fn side(arg: &[u8]) -> Result<bool, Reply> {
    match () {
        _ if is(arg, "left") => Ok(true),
        _ if is(arg, "right") => Ok(false),
        _ => Err(args::syntax()),
    }
}

/// An index counted from the end when negative, if it is in the list.
fn index(at: i64, len: usize) -> Option<usize> {
    let at = if at < 0 { at + len as i64 } else { at };
    (0..len as i64).contains(&at).then_some(at as usize)
}

fn pop(space: &mut Keyspace<'_>, ctx: &Ctx<'_>, left: bool) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    if args.len() > 3 {
        return Err(args::syntax());
    }
    let wanted = args.get(2).map(|c| count(c)).transpose()?;
    let Some(mut list) = space.take::<List>(key)? else {
        return Ok(match wanted {
            None => Reply::Null,
            Some(_) => Reply::NullArray,
        });
    };
    let reply = match wanted {
        None => Reply::bulk_or_null(list.value.pop(left)),
        Some(n) => Reply::Array(
            (0..n)
                .map_while(|_| list.value.pop(left))
                .map(Reply::Bulk)
                .collect(),
        ),
    };
    space.put(key, list)?;
    Ok(reply)
}

fn lrem(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let wanted = int(&args[2])?;
    let element = &args[3];
    let Some(mut list) = space.take::<List>(key)? else {
        return Ok(Reply::Integer(0));
    };
    let len = list.value.len();
    let limit = if wanted == 0 {
        usize::MAX
    } else {
        wanted.unsigned_abs() as usize
    };
    // Which positions go: the first `limit` matches from the head, or
    // from the tail when the count is negative.
    let mut matches: Vec<usize> = (0..len)
        .filter(|&at| list.value.items()[at] == element)
        .collect();
    if wanted < 0 {
        matches.reverse();
    }
    matches.truncate(limit);
    matches.sort_unstable();
    let removed = matches.len();
    list.value
        .retain(|at, _| matches.binary_search(&at).is_err());
    space.put(key, list)?;
    Ok(Reply::Integer(removed as i64))
}

fn linsert(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let after = match () {
        _ if is(&args[2], "before") => false,
        _ if is(&args[2], "after") => true,
        _ => return Err(args::syntax()),
    };
    let Some(mut list) = space.take::<List>(key)? else {
        return Ok(Reply::Integer(0));
    };
    let pivot = list.value.items().iter().position(|i| i == &args[3]);
    let reply = match pivot {
        None => Reply::Integer(-1),
        Some(at) => {
            list.value.insert(at + usize::from(after), owned(&args[4]));
            Reply::Integer(list.value.len() as i64)
        }
    };
    space.put(key, list)?;
    Ok(reply)
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len].
fn lpos(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let (mut rank, mut wanted, mut maxlen) = (1i64, None, 0usize);
    let mut rest = args[3..].iter();
    while let Some(option) = rest.next() {
        let value = rest.next().ok_or_else(args::syntax)?;
        if is(option, "rank") {
            rank = int(value)?;
            if rank == 0 {
                return Err(Reply::error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(option, "count") {
            let n = int(value)?;
            wanted =
                Some(usize::try_from(n).map_err(|_| Reply::error("ERR COUNT can't be negative"))?);
        } else if is(option, "maxlen") {
            let n = int(value)?;
            maxlen =
                usize::try_from(n).map_err(|_| Reply::error("ERR MAXLEN can't be negative"))?;
        } else {
            return Err(args::syntax());
        }
    }
    let Some(list) = space.read::<List>(key)? else {
        return Ok(match wanted {
            None => Reply::Null,
            Some(_) => Reply::Array(Vec::new()),
        });
    };
    let items = list.items();
    let len = items.len();
    let scan = if maxlen == 0 { len } else { maxlen.min(len) };
    let positions: Box<dyn Iterator<Item = usize>> = match rank > 0 {
        true => Box::new(0..scan),
        false => Box::new((len - scan..len).rev()),
    };
    let skip = rank.unsigned_abs() as usize - 1;
    let mut found = positions.filter(|&at| items[at] == args[2]).skip(skip);
    Ok(match wanted {
        None => found
            .next()
            .map_or(Reply::Null, |at| Reply::Integer(at as i64)),
        Some(n) => {
            let n = if n == 0 { usize::MAX } else { n };
            Reply::Array(found.take(n).map(|at| Reply::Integer(at as i64)).collect())
        }
    })
}

fn lmove(
    space: &mut Keyspace<'_>,
    source: &Bytes,
    destination: &Bytes,
    from_left: bool,
    to_left: bool,
) -> Out {
    // Both kinds are checked before anything moves.
    space.read::<List>(destination)?;
    let Some(mut from) = space.take::<List>(source)? else {
        return Ok(Reply::Null);
    };
    let Some(item) = from.value.pop(from_left) else {
        return Ok(Reply::Null);
    };
    if source == destination {
        from.value.push(item.clone(), to_left);
        space.put(source, from)?;
        return Ok(Reply::Bulk(item));
    }
    space.put(source, from)?;
    let mut to = space.take_or_new::<List>(destination)?;
    to.value.push(item.clone(), to_left);
    space.put(destination, to)?;
    Ok(Reply::Bulk(item))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: from the first
/// non-empty list, `[key, [elements]]`.
fn lmpop(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let n = numkeys(args, 1)?;
    let mut rest = args[2 + n..].iter();
    let left = side(rest.next().ok_or_else(args::syntax)?)?;
    let mut wanted = 1;
    match (rest.next(), rest.next(), rest.next()) {
        (None, _, _) => {}
        (Some(option), Some(value), None) if is(option, "count") => {
            wanted = int(value)?;
            if wanted <= 0 {
                return Err(Reply::error("ERR count should be greater than 0"));
            }
        }
        _ => return Err(args::syntax()),
    }
    for key in &args[2..2 + n] {
        let Some(mut list) = space.take::<List>(key)? else {
            continue;
        };
        let popped: Vec<Reply> = (0..wanted)
            .map_while(|_| list.value.pop(left))
            .map(Reply::Bulk)
            .collect();
        space.put(key, list)?;
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(popped),
        ]));
    }
    Ok(Reply::NullArray)
}
