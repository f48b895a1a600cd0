//! ZUNION, ZINTER and ZDIFF (and their STORE forms, ZINTERCARD): sorted
//! sets and sets combined, with WEIGHTS and AGGREGATE.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::super::args::{self, int, is};
use super::super::collections::{Kind, Set, SortedSet};
use super::super::{Ctx, Keyspace, Out};
use super::{pairs, store, Shape};

/// How ZUNION and ZINTER join the scores of a member found in several
/// inputs.
#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn join(self, a: f64, b: f64) -> f64 {
        match self {
            // inf + -inf: redis counts it 0.
            Aggregate::Sum => zero_if_nan(a + b),
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        }
    }
}

fn zero_if_nan(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value
    }
}

/// ZUNION/ZINTER/ZDIFF numkeys key ... [WEIGHTS w ...] [AGGREGATE a]
/// [WITHSCORES], and their STORE forms (a destination first, no WITHSCORES).
pub(super) fn combine(space: &mut Keyspace<'_>, name: &[u8], ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let storing = name.ends_with(b"store");
    let numkeys_at = if storing { 2 } else { 1 };
    let n = int(&args[numkeys_at])?;
    if n < 1 {
        return Err(Reply::error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(name)
        )));
    }
    let n = n as usize;
    let first = numkeys_at + 1;
    if first + n > args.len() {
        return Err(args::syntax());
    }
    let keys = &args[first..first + n];
    let is_diff = name.starts_with(b"zdiff");
    let (mut weights, mut how, mut with_scores) = (Vec::new(), Aggregate::Sum, false);
    let mut at = first + n;
    while at < args.len() {
        let option = &args[at];
        if is(option, "weights") && !is_diff && at + n < args.len() {
            weights = args[at + 1..=at + n]
                .iter()
                .map(|w| args::float_or(w, || Reply::error("ERR weight value is not a float")))
                .collect::<Result<_, _>>()?;
            at += n + 1;
        } else if is(option, "aggregate") && !is_diff && at + 1 < args.len() {
            how = match args[at + 1].to_ascii_lowercase().as_slice() {
                b"sum" => Aggregate::Sum,
                b"min" => Aggregate::Min,
                b"max" => Aggregate::Max,
                _ => return Err(args::syntax()),
            };
            at += 2;
        } else if is(option, "withscores") && !storing {
            with_scores = true;
            at += 1;
        } else {
            return Err(args::syntax());
        }
    }
    let op = match () {
        _ if name.starts_with(b"zunion") => SetOp::Union,
        _ if name.starts_with(b"zinter") => SetOp::Inter,
        _ => SetOp::Diff,
    };
    let result = aggregate(space, op, keys, &weights, how)?;
    match storing {
        true => store(space, &args[1], result),
        false => Ok(pairs(result, Shape::with_scores(with_scores, ctx.resp3))),
    }
}

#[derive(Clone, Copy)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

/// The members and scores of a union, intersection or difference of the
/// inputs at `keys` (sets count as score 1), ordered as a sorted set.
fn aggregate(
    space: &mut Keyspace<'_>,
    op: SetOp,
    keys: &[Bytes],
    weights: &[f64],
    how: Aggregate,
) -> Result<Vec<(Bytes, f64)>, Reply> {
    let inputs = read_inputs(space, keys, weights)?;
    let mut result: indexmap::IndexMap<Bytes, f64> = indexmap::IndexMap::new();
    let mut inputs = inputs.into_iter();
    for (member, s) in inputs.next().unwrap_or_default() {
        result.insert(member, s);
    }
    for input in inputs {
        match op {
            SetOp::Union => {
                for (member, s) in input {
                    let joined = match result.get(&member) {
                        Some(&current) => how.join(current, s),
                        None => s,
                    };
                    result.insert(member, joined);
                }
            }
            SetOp::Inter => {
                let other: std::collections::HashMap<Bytes, f64> = input.into_iter().collect();
                result.retain(|member, s| match other.get(member) {
                    Some(&o) => {
                        *s = how.join(*s, o);
                        true
                    }
                    None => false,
                });
            }
            SetOp::Diff => {
                for (member, _) in input {
                    result.shift_remove(&member);
                }
            }
        }
    }
    let mut items: Vec<(Bytes, f64)> = result.into_iter().collect();
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(items)
}

/// The members and weighted scores of each input (a missing key: none).
fn read_inputs(
    space: &mut Keyspace<'_>,
    keys: &[Bytes],
    weights: &[f64],
) -> Result<Vec<Vec<(Bytes, f64)>>, Reply> {
    let mut inputs: Vec<Vec<(Bytes, f64)>> = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let weight = weights.get(i).copied().unwrap_or(1.0);
        let weighted = |s: f64| zero_if_nan(s * weight);
        let members = match space.get(key)? {
            None => Vec::new(),
            Some(stored) => {
                let Some(collection) = stored.collection.as_deref() else {
                    return Err(args::wrong_type());
                };
                if let Some(zset) = SortedSet::of(collection) {
                    zset.iter().map(|(m, s)| (m.clone(), weighted(s))).collect()
                } else if let Some(set) = Set::of(collection) {
                    set.iter().map(|m| (m.clone(), weighted(1.0))).collect()
                } else {
                    return Err(args::wrong_type());
                }
            }
        };
        inputs.push(members);
    }
    Ok(inputs)
}

/// ZINTERCARD numkeys key ... [LIMIT limit].
pub(super) fn zintercard(space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let args = ctx.args;
    let n = args::numkeys(args, 1)?;
    let limit = match &args[2 + n..] {
        [] => 0,
        [option, value] if is(option, "limit") => {
            usize::try_from(int(value)?).map_err(|_| Reply::error("ERR LIMIT can't be negative"))?
        }
        _ => return Err(args::syntax()),
    };
    let inter = aggregate(space, SetOp::Inter, &args[2..2 + n], &[], Aggregate::Sum)?;
    let len = match limit {
        0 => inter.len(),
        limit => inter.len().min(limit),
    };
    Ok(Reply::Integer(len as i64))
}
