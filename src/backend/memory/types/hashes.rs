//! Hash commands (HSET ... HSCAN).

use keyway_protocol::resp::Reply;
use rand::seq::IteratorRandom;
use rand::Rng;

use super::args::{self, float_text, int, is, owned, ScanArgs};
use super::collections::Hash;
use super::{Ctx, Keyspace, Out};

pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"hset" | b"hmset" => {
            if args.len() % 2 != 0 {
                return Err(ctx.arity());
            }
            let mut hash = space.take_or_new::<Hash>(key)?;
            let added = args[2..]
                .chunks(2)
                .filter(|pair| hash.value.insert(owned(&pair[0]), owned(&pair[1])))
                .count();
            space.put(key, hash)?;
            Ok(match name {
                b"hset" => Reply::Integer(added as i64),
                _ => Reply::ok(),
            })
        }
        b"hsetnx" => {
            if space
                .read::<Hash>(key)?
                .is_some_and(|h| h.get(&args[2]).is_some())
            {
                return Ok(Reply::Integer(0));
            }
            let mut hash = space.take_or_new::<Hash>(key)?;
            hash.value.insert(owned(&args[2]), owned(&args[3]));
            space.put(key, hash)?;
            Ok(Reply::Integer(1))
        }
        _ => read(name, space, ctx),
    }
}

/// The commands that only read a hash.
fn read(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"hget" => Ok(Reply::bulk_or_null(
            space
                .read::<Hash>(key)?
                .and_then(|h| h.get(&args[2]).cloned()),
        )),
        b"hmget" => {
            let hash = space.read::<Hash>(key)?;
            Ok(Reply::Array(
                args[2..]
                    .iter()
                    .map(|f| Reply::bulk_or_null(hash.and_then(|h| h.get(f).cloned())))
                    .collect(),
            ))
        }
        b"hgetall" => {
            let pairs = space.read::<Hash>(key)?.map_or_else(Vec::new, |h| {
                h.iter()
                    .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                    .collect()
            });
            Ok(Reply::Map(pairs))
        }
        b"hkeys" | b"hvals" => {
            let keys = name == b"hkeys";
            let list = space.read::<Hash>(key)?.map_or_else(Vec::new, |h| {
                h.iter()
                    .map(|(f, v)| Reply::Bulk(if keys { f } else { v }.clone()))
                    .collect()
            });
            Ok(Reply::Array(list))
        }
        b"hlen" => Ok(Reply::Integer(
            space.read::<Hash>(key)?.map_or(0, Hash::len) as i64,
        )),
        b"hexists" => Ok(Reply::Integer(i64::from(
            space
                .read::<Hash>(key)?
                .is_some_and(|h| h.get(&args[2]).is_some()),
        ))),
        _ => lengths_and_scans(name, space, ctx),
    }
}

/// HSTRLEN, HDEL, HINCRBY, HINCRBYFLOAT, HRANDFIELD and HSCAN.
fn lengths_and_scans(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"hstrlen" => Ok(Reply::Integer(
            space
                .read::<Hash>(key)?
                .and_then(|h| h.get(&args[2]))
                .map_or(0, |v| v.len()) as i64,
        )),
        b"hdel" => {
            let Some(mut hash) = space.take::<Hash>(key)? else {
                return Ok(Reply::Integer(0));
            };
            let removed = args[2..].iter().filter(|f| hash.value.remove(f)).count();
            space.put(key, hash)?;
            Ok(Reply::Integer(removed as i64))
        }
        b"hincrby" => hincrby(space, ctx),
        b"hincrbyfloat" => hincrbyfloat(space, ctx),
        b"hrandfield" => hrandfield(space, ctx),
        b"hscan" => {
            let scan = ScanArgs::parse(args)?;
            let Some(hash) = space.read::<Hash>(key)? else {
                return Ok(args::scan_reply(0, Vec::new()));
            };
            let (next, page) = scan.page(hash.iter(), |(f, _)| f);
            let page = page
                .into_iter()
                .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                .collect();
            Ok(args::scan_reply(next, page))
        }
        _ => Err(args::wrong_arity(name)),
    }
}

fn hincrby(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let delta = int(&args[3])?;
    let current = match space.read::<Hash>(key)?.and_then(|h| h.get(&args[2])) {
        None => 0,
        Some(value) => int(value).map_err(|_| Reply::error("ERR hash value is not an integer"))?,
    };
    let value = current
        .checked_add(delta)
        .ok_or_else(|| Reply::error("ERR increment or decrement would overflow"))?;
    let mut hash = space.take_or_new::<Hash>(key)?;
    hash.value.insert(owned(&args[2]), value.to_string().into());
    space.put(key, hash)?;
    Ok(Reply::Integer(value))
}

fn hincrbyfloat(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let delta = args::float(&args[3])?;
    let current = match space.read::<Hash>(key)?.and_then(|h| h.get(&args[2])) {
        None => 0.0,
        Some(value) => args::float_or(value, || Reply::error("ERR hash value is not a float"))?,
    };
    let value = current + delta;
    if !value.is_finite() {
        return Err(Reply::error("ERR increment would produce NaN or Infinity"));
    }
    let text = float_text(value);
    let mut hash = space.take_or_new::<Hash>(key)?;
    hash.value.insert(owned(&args[2]), text.clone().into());
    space.put(key, hash)?;
    Ok(Reply::bulk(text))
}

/// HRANDFIELD key [count [WITHVALUES]]: a positive count, distinct fields;
/// a negative one, that many with repeats.
fn hrandfield(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let with_values = match args.len() {
        2 | 3 => false,
        4 if is(&args[3], "withvalues") => true,
        _ => return Err(args::syntax()),
    };
    let count = args.get(2).map(|c| int(c)).transpose()?;
    let hash = space.read::<Hash>(key)?;
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        let field = hash.and_then(|h| h.iter().choose(&mut rng).map(|(f, _)| f.clone()));
        return Ok(Reply::bulk_or_null(field));
    };
    let Some(hash) = hash else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked: Vec<_> = if count >= 0 {
        hash.iter().choose_multiple(&mut rng, count as usize)
    } else {
        let len = hash.len();
        (0..count.unsigned_abs())
            .filter_map(|_| hash.get_index(rng.gen_range(0..len)))
            .collect()
    };
    let reply = picked
        .into_iter()
        .flat_map(|(f, v)| match (with_values, ctx.resp3) {
            (false, _) => vec![Reply::Bulk(f.clone())],
            (true, true) => vec![Reply::Array(vec![
                Reply::Bulk(f.clone()),
                Reply::Bulk(v.clone()),
            ])],
            (true, false) => vec![Reply::Bulk(f.clone()), Reply::Bulk(v.clone())],
        })
        .collect();
    Ok(Reply::Array(reply))
}
