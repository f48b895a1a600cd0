//! Set commands (SADD ... SSCAN).

use bytes::Bytes;
use keyway_protocol::resp::Reply;
use rand::seq::IteratorRandom;
use rand::Rng;

use super::args::{self, count, int, is, numkeys, owned, ScanArgs};
use super::collections::Set;
use super::{Ctx, Held, Keyspace, Out};

pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"sadd" => {
            let mut set = space.take_or_new::<Set>(key)?;
            let added = args[2..]
                .iter()
                .filter(|m| set.value.insert(owned(m)))
                .count();
            space.put(key, set)?;
            Ok(Reply::Integer(added as i64))
        }
        b"srem" => {
            let Some(mut set) = space.take::<Set>(key)? else {
                return Ok(Reply::Integer(0));
            };
            let removed = args[2..].iter().filter(|m| set.value.remove(m)).count();
            space.put(key, set)?;
            Ok(Reply::Integer(removed as i64))
        }
        _ => read(name, space, ctx),
    }
}

/// Reads, and the commands over several sets.
fn read(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"smembers" => Ok(Reply::Set(members(space.read::<Set>(key)?))),
        b"sismember" => Ok(Reply::Integer(i64::from(
            space
                .read::<Set>(key)?
                .is_some_and(|s| s.contains(&args[2])),
        ))),
        b"smismember" => {
            let set = space.read::<Set>(key)?;
            Ok(Reply::Array(
                args[2..]
                    .iter()
                    .map(|m| Reply::Integer(i64::from(set.is_some_and(|s| s.contains(m)))))
                    .collect(),
            ))
        }
        b"scard" => Ok(Reply::Integer(
            space.read::<Set>(key)?.map_or(0, Set::len) as i64
        )),
        b"spop" => spop(space, ctx),
        b"srandmember" => srandmember(space, ctx),
        b"smove" => smove(space, ctx),
        b"sdiff" | b"sinter" | b"sunion" => {
            let result = combine(space, name, &args[1..])?;
            Ok(Reply::Set(result.into_iter().map(Reply::Bulk).collect()))
        }
        b"sdiffstore" | b"sinterstore" | b"sunionstore" => {
            let result = combine(space, &name[..name.len() - 5], &args[2..])?;
            let mut set = Set::default();
            for member in result {
                set.insert(member);
            }
            let len = set.len();
            space.store(key, Held::new(set))?;
            Ok(Reply::Integer(len as i64))
        }
        b"sintercard" => sintercard(space, ctx),
        b"sscan" => {
            let scan = ScanArgs::parse(args)?;
            let Some(set) = space.read::<Set>(key)? else {
                return Ok(args::scan_reply(0, Vec::new()));
            };
            let (next, page) = scan.page(set.iter(), |m| m);
            Ok(args::scan_reply(
                next,
                page.into_iter().map(|m| Reply::Bulk(m.clone())).collect(),
            ))
        }
        _ => Err(args::wrong_arity(name)),
    }
}

fn members(set: Option<&Set>) -> Vec<Reply> {
    set.map_or_else(Vec::new, |s| s.iter().cloned().map(Reply::Bulk).collect())
}

/// SDIFF, SINTER or SUNION of the sets at `keys` (a missing key is an
/// empty set; any other kind, WRONGTYPE).
fn combine(space: &mut Keyspace<'_>, op: &[u8], keys: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push(space.read::<Set>(key)?.cloned());
    }
    let empty = Set::default();
    let first = sets[0].as_ref().unwrap_or(&empty);
    let rest = || sets[1..].iter().map(|s| s.as_ref().unwrap_or(&empty));
    Ok(match op {
        b"sdiff" => first
            .iter()
            .filter(|m| rest().all(|s| !s.contains(m)))
            .cloned()
            .collect(),
        b"sinter" => first
            .iter()
            .filter(|m| rest().all(|s| s.contains(m)))
            .cloned()
            .collect(),
        _ => {
            let mut union = first.clone();
            for set in rest() {
                for member in set.iter() {
                    union.insert(member.clone());
                }
            }
            union.iter().cloned().collect()
        }
    })
}

fn sintercard(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let n = numkeys(args, 1)?;
    let mut limit = 0usize;
    let mut rest = args[2 + n..].iter();
    while let Some(option) = rest.next() {
        match (is(option, "limit"), rest.next()) {
            (true, Some(value)) => {
                let value = int(value)?;
                limit = usize::try_from(value)
                    .map_err(|_| Reply::error("ERR LIMIT can't be negative"))?;
            }
            _ => return Err(args::syntax()),
        }
    }
    let inter = combine(space, b"sinter", &args[2..2 + n])?;
    let len = match limit {
        0 => inter.len(),
        limit => inter.len().min(limit),
    };
    Ok(Reply::Integer(len as i64))
}

fn spop(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    if args.len() > 3 {
        return Err(args::syntax());
    }
    let wanted = args.get(2).map(|c| count(c)).transpose()?;
    let Some(mut set) = space.take::<Set>(key)? else {
        return Ok(match wanted {
            None => Reply::Null,
            Some(_) => Reply::Set(Vec::new()),
        });
    };
    let mut rng = rand::thread_rng();
    let mut pop = |set: &mut Set| {
        let at = rng.gen_range(0..set.len());
        set.remove_index(at)
    };
    let reply = match wanted {
        None => Reply::bulk_or_null(pop(&mut set.value)),
        Some(n) => {
            let n = n.min(set.value.len());
            Reply::Set(
                (0..n)
                    .filter_map(|_| pop(&mut set.value))
                    .map(Reply::Bulk)
                    .collect(),
            )
        }
    };
    space.put(key, set)?;
    Ok(reply)
}

fn srandmember(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    if args.len() > 3 {
        return Err(args::syntax());
    }
    let wanted = args.get(2).map(|c| int(c)).transpose()?;
    let set = space.read::<Set>(key)?;
    let mut rng = rand::thread_rng();
    let Some(n) = wanted else {
        return Ok(Reply::bulk_or_null(
            set.and_then(|s| s.iter().choose(&mut rng).cloned()),
        ));
    };
    let Some(set) = set else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked: Vec<Reply> = if n >= 0 {
        set.iter()
            .choose_multiple(&mut rng, n as usize)
            .into_iter()
            .cloned()
            .map(Reply::Bulk)
            .collect()
    } else {
        (0..n.unsigned_abs())
            .filter_map(|_| set.get_index(rng.gen_range(0..set.len())).cloned())
            .map(Reply::Bulk)
            .collect()
    };
    Ok(Reply::Array(picked))
}

fn smove(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let (source, destination, member) = (&args[1], &args[2], &args[3]);
    // Both kinds are checked before anything moves.
    let present = space
        .read::<Set>(source)?
        .is_some_and(|s| s.contains(member));
    space.read::<Set>(destination)?;
    if !present {
        return Ok(Reply::Integer(0));
    }
    if source == destination {
        return Ok(Reply::Integer(1));
    }
    let Some(mut from) = space.take::<Set>(source)? else {
        return Ok(Reply::Integer(0));
    };
    from.value.remove(member);
    space.put(source, from)?;
    let mut to = space.take_or_new::<Set>(destination)?;
    to.value.insert(owned(member));
    space.put(destination, to)?;
    Ok(Reply::Integer(1))
}
