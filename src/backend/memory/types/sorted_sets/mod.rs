//! Sorted set commands (ZADD ... ZSCAN).

use bytes::Bytes;
use keyway_protocol::resp::Reply;
use rand::seq::IteratorRandom;
use rand::Rng;

use super::args::{self, count, float, int, is, numkeys, owned, score, score_text, ScanArgs};
use super::collections::SortedSet;
use super::{Ctx, Held, Keyspace, Out};

mod algebra;
mod ranges;
use algebra::combine;
use ranges::{Query, Selection};

pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"zadd" => zadd(space, ctx),
        b"zincrby" => {
            let delta = float(&args[2])?;
            let mut zset = space.take_or_new::<SortedSet>(key)?;
            let value = zset.value.score(&args[3]).unwrap_or(0.0) + delta;
            if value.is_nan() {
                space.put(key, zset)?;
                return Err(nan());
            }
            zset.value.insert(owned(&args[3]), value);
            space.put(key, zset)?;
            Ok(score(value, ctx.resp3))
        }
        b"zrem" => {
            let Some(mut zset) = space.take::<SortedSet>(key)? else {
                return Ok(Reply::Integer(0));
            };
            let removed = args[2..].iter().filter(|m| zset.value.remove(m)).count();
            space.put(key, zset)?;
            Ok(Reply::Integer(removed as i64))
        }
        b"zscore" => {
            let found = space
                .read::<SortedSet>(key)?
                .and_then(|z| z.score(&args[2]));
            Ok(found.map_or(Reply::Null, |s| score(s, ctx.resp3)))
        }
        b"zmscore" => {
            let zset = space.read::<SortedSet>(key)?;
            Ok(Reply::Array(
                args[2..]
                    .iter()
                    .map(|m| {
                        zset.and_then(|z| z.score(m))
                            .map_or(Reply::Null, |s| score(s, ctx.resp3))
                    })
                    .collect(),
            ))
        }
        _ => read(name, space, ctx),
    }
}

/// Reads and ranges.
fn read(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"zcard" => Ok(Reply::Integer(
            space.read::<SortedSet>(key)?.map_or(0, SortedSet::len) as i64,
        )),
        b"zrank" | b"zrevrank" => {
            let Some(zset) = space.read::<SortedSet>(key)? else {
                return Ok(Reply::Null);
            };
            let Some(at) = zset.iter().position(|(m, _)| m == &args[2]) else {
                return Ok(Reply::Null);
            };
            let rank = if name == b"zrank" {
                at
            } else {
                zset.len() - 1 - at
            };
            Ok(Reply::Integer(rank as i64))
        }
        b"zcount" | b"zlexcount" => {
            let query = Query::counting(name, &args[2], &args[3])?;
            let zset = space.read::<SortedSet>(key)?;
            Ok(Reply::Integer(
                zset.map_or(0, |z| query.select(z).len()) as i64
            ))
        }
        b"zrange" | b"zrangebyscore" | b"zrevrangebyscore" | b"zrevrange" | b"zrangebylex"
        | b"zrevrangebylex" => {
            let query = Query::parse(name, &args[2..])?;
            let selection = match space.read::<SortedSet>(key)? {
                Some(zset) => query.select(zset),
                None => Selection::default(),
            };
            Ok(pairs(
                selection.items,
                Shape::with_scores(query.with_scores, ctx.resp3),
            ))
        }
        b"zrangestore" => {
            let query = Query::parse(name, &args[3..])?;
            let selection = match space.read::<SortedSet>(&args[2])? {
                Some(zset) => query.select(zset),
                None => Selection::default(),
            };
            store(space, key, selection.items)
        }
        _ => remove_and_combine(name, space, ctx),
    }
}

/// Removals, pops, random picks, combinations and ZSCAN.
fn remove_and_combine(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    match name {
        b"zremrangebyrank" | b"zremrangebyscore" | b"zremrangebylex" => {
            let query = Query::counting(name, &args[2], &args[3])?;
            let Some(mut zset) = space.take::<SortedSet>(key)? else {
                return Ok(Reply::Integer(0));
            };
            let gone = query.select(&zset.value).items;
            for (member, _) in &gone {
                zset.value.remove(member);
            }
            space.put(key, zset)?;
            Ok(Reply::Integer(gone.len() as i64))
        }
        b"zpopmin" | b"zpopmax" => {
            if args.len() > 3 {
                return Err(args::syntax());
            }
            let wanted = args.get(2).map(|c| count(c)).transpose()?;
            let popped = pop(space, key, name == b"zpopmax", wanted.unwrap_or(1))?;
            let resp3 = ctx.resp3;
            Ok(match wanted {
                None => pairs(popped, Shape::Flat { resp3 }),
                Some(_) => pairs(popped, Shape::with_scores(true, resp3)),
            })
        }
        b"zmpop" => zmpop(space, ctx),
        b"zrandmember" => zrandmember(space, ctx),
        b"zunion" | b"zinter" | b"zdiff" | b"zunionstore" | b"zinterstore" | b"zdiffstore" => {
            combine(space, name, ctx)
        }
        b"zintercard" => algebra::zintercard(space, ctx),
        b"zscan" => {
            let scan = ScanArgs::parse(args)?;
            let Some(zset) = space.read::<SortedSet>(key)? else {
                return Ok(args::scan_reply(0, Vec::new()));
            };
            let (next, page) = scan.page(zset.iter(), |(m, _)| m);
            let page = page
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m.clone()), Reply::bulk(score_text(s))])
                .collect();
            Ok(args::scan_reply(next, page))
        }
        _ => Err(args::wrong_arity(name)),
    }
}

fn nan() -> Reply {
    Reply::error("ERR resulting score is not a number (NaN)")
}

/// How a reply lists members with their scores.
#[derive(Clone, Copy)]
enum Shape {
    /// Members alone.
    Members,
    /// Member, score, member, score... (RESP2; ZPOPMIN without a count).
    Flat { resp3: bool },
    /// [member, score] pairs (RESP3; ZMPOP always).
    Pairs { resp3: bool },
}

impl Shape {
    /// WITHSCORES as the client's protocol lists them.
    fn with_scores(with: bool, resp3: bool) -> Self {
        match (with, resp3) {
            (false, _) => Shape::Members,
            (true, false) => Shape::Flat { resp3 },
            (true, true) => Shape::Pairs { resp3 },
        }
    }
}

fn pairs(items: Vec<(Bytes, f64)>, shape: Shape) -> Reply {
    let reply = items.into_iter().flat_map(|(member, s)| match shape {
        Shape::Members => vec![Reply::Bulk(member)],
        Shape::Flat { resp3 } => vec![Reply::Bulk(member), score(s, resp3)],
        Shape::Pairs { resp3 } => vec![Reply::Array(vec![Reply::Bulk(member), score(s, resp3)])],
    });
    Reply::Array(reply.collect())
}

/// Replaces `key` with a sorted set of `items` (none: the key is
/// removed); its size.
fn store(space: &mut Keyspace<'_>, key: &[u8], items: Vec<(Bytes, f64)>) -> Out {
    let mut zset = SortedSet::default();
    for (member, s) in items {
        zset.insert(member, s);
    }
    let len = zset.len();
    space.store(key, Held::new(zset))?;
    Ok(Reply::Integer(len as i64))
}

/// ZADD's flags, and where its score-member pairs start.
#[derive(Default)]
struct ZaddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

impl ZaddFlags {
    /// The flags after the key, checked as redis checks them.
    fn parse(args: &[Bytes]) -> Result<(Self, usize), Reply> {
        let mut flags = ZaddFlags::default();
        let mut at = 2;
        while let Some(arg) = args.get(at) {
            let flag = match arg.to_ascii_lowercase().as_slice() {
                b"nx" => &mut flags.nx,
                b"xx" => &mut flags.xx,
                b"gt" => &mut flags.gt,
                b"lt" => &mut flags.lt,
                b"ch" => &mut flags.ch,
                b"incr" => &mut flags.incr,
                _ => break,
            };
            *flag = true;
            at += 1;
        }
        let elements = args.len() - at;
        if elements == 0 || elements % 2 != 0 {
            return Err(args::syntax());
        }
        if flags.nx && flags.xx {
            return Err(Reply::error(
                "ERR XX and NX options at the same time are not compatible",
            ));
        }
        // Any two of GT, LT and NX.
        if [flags.gt, flags.lt, flags.nx]
            .iter()
            .filter(|&&f| f)
            .count()
            > 1
        {
            return Err(Reply::error(
                "ERR GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if flags.incr && elements > 2 {
            return Err(Reply::error(
                "ERR INCR option supports a single increment-element pair",
            ));
        }
        Ok((flags, at))
    }
}

fn zadd(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let (flags, at) = ZaddFlags::parse(args)?;
    let ZaddFlags {
        nx,
        xx,
        gt,
        lt,
        ch,
        incr,
    } = flags;
    let pairs: Vec<(f64, &Bytes)> = args[at..]
        .chunks(2)
        .map(|pair| Ok((float(&pair[0])?, &pair[1])))
        .collect::<Result<_, Reply>>()?;
    let mut zset = space.take_or_new::<SortedSet>(key)?;
    let (mut added, mut updated, mut last) = (0, 0, None);
    for (given, member) in pairs {
        let current = zset.value.score(member);
        let value = match (current, incr) {
            (Some(current), true) => current + given,
            _ => given,
        };
        if value.is_nan() {
            space.put(key, zset)?;
            return Err(nan());
        }
        let skip = match current {
            Some(_) if nx => true,
            None if xx => true,
            Some(current) => (gt && value <= current) || (lt && value >= current),
            None => false,
        };
        if skip {
            continue;
        }
        last = Some(value);
        match current {
            None => added += 1,
            Some(current) if current != value => updated += 1,
            Some(_) => {}
        }
        zset.value.insert(owned(member), value);
    }
    space.put(key, zset)?;
    Ok(match incr {
        true => last.map_or(Reply::Null, |s| score(s, ctx.resp3)),
        false => Reply::Integer(added + if ch { updated } else { 0 }),
    })
}

/// Removes and returns up to `n` members from the low end (or the high).
fn pop(
    space: &mut Keyspace<'_>,
    key: &[u8],
    high: bool,
    n: usize,
) -> Result<Vec<(Bytes, f64)>, Reply> {
    let Some(mut zset) = space.take::<SortedSet>(key)? else {
        return Ok(Vec::new());
    };
    let popped: Vec<(Bytes, f64)> = match high {
        false => zset
            .value
            .iter()
            .take(n)
            .map(|(m, s)| (m.clone(), s))
            .collect(),
        true => zset
            .value
            .iter()
            .rev()
            .take(n)
            .map(|(m, s)| (m.clone(), s))
            .collect(),
    };
    for (member, _) in &popped {
        zset.value.remove(member);
    }
    space.put(key, zset)?;
    Ok(popped)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count].
fn zmpop(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let n = numkeys(args, 1)?;
    let mut rest = args[2 + n..].iter();
    let high = match rest.next() {
        Some(side) if is(side, "min") => false,
        Some(side) if is(side, "max") => true,
        _ => return Err(args::syntax()),
    };
    let mut wanted = 1;
    match (rest.next(), rest.next(), rest.next()) {
        (None, _, _) => {}
        (Some(option), Some(value), None) if is(option, "count") => {
            let value = int(value)?;
            if value <= 0 {
                return Err(Reply::error("ERR count should be greater than 0"));
            }
            wanted = value as usize;
        }
        _ => return Err(args::syntax()),
    }
    for key in &args[2..2 + n] {
        let popped = pop(space, key, high, wanted)?;
        if !popped.is_empty() {
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                pairs(popped, Shape::Pairs { resp3: ctx.resp3 }),
            ]));
        }
    }
    Ok(Reply::NullArray)
}

fn zrandmember(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let (key, args) = (ctx.key(), ctx.args);
    let with_scores = match args.len() {
        2 | 3 => false,
        4 if is(&args[3], "withscores") => true,
        _ => return Err(args::syntax()),
    };
    let wanted = args.get(2).map(|c| int(c)).transpose()?;
    let zset = space.read::<SortedSet>(key)?;
    let mut rng = rand::thread_rng();
    let Some(n) = wanted else {
        let member = zset.and_then(|z| z.iter().choose(&mut rng).map(|(m, _)| m.clone()));
        return Ok(Reply::bulk_or_null(member));
    };
    let Some(zset) = zset else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked: Vec<(Bytes, f64)> = if n >= 0 {
        zset.iter()
            .choose_multiple(&mut rng, n as usize)
            .into_iter()
            .map(|(m, s)| (m.clone(), s))
            .collect()
    } else {
        let all: Vec<_> = zset.iter().collect();
        (0..n.unsigned_abs())
            .map(|_| all[rng.gen_range(0..all.len())])
            .map(|(m, s)| (m.clone(), s))
            .collect()
    };
    Ok(pairs(picked, Shape::with_scores(with_scores, ctx.resp3)))
}
