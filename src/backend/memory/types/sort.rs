//! SORT and SORT_RO, as redis 7.0's `sortCommandGeneric` does them: the
//! elements of a list, set or sorted set, ordered by themselves or by the
//! values a BY pattern names, then GET patterns, LIMIT and STORE. A pattern
//! reads other keys: such a SORT runs with every shard locked (see
//! `MemoryBackend::run_typed`).

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::args::{self, int, is};
use super::collections::{Collection, Hash, List};
use super::{Ctx, Held, Keyspace, Out};

/// SORT's options.
#[derive(Default)]
struct Options {
    by: Option<Bytes>,
    gets: Vec<Bytes>,
    limit: Option<(i64, i64)>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

impl Options {
    fn parse(args: &[Bytes], read_only: bool) -> Result<Self, Reply> {
        let mut options = Options::default();
        let mut at = 2;
        while at < args.len() {
            let left = args.len() - at - 1;
            let option = &args[at];
            if is(option, "asc") {
                options.desc = false;
            } else if is(option, "desc") {
                options.desc = true;
            } else if is(option, "alpha") {
                options.alpha = true;
            } else if is(option, "limit") && left >= 2 {
                options.limit = Some((int(&args[at + 1])?, int(&args[at + 2])?));
                at += 2;
            } else if is(option, "store") && left >= 1 && !read_only {
                options.store = Some(args[at + 1].clone());
                at += 1;
            } else if is(option, "by") && left >= 1 {
                options.by = Some(args[at + 1].clone());
                at += 1;
            } else if is(option, "get") && left >= 1 {
                options.gets.push(args[at + 1].clone());
                at += 1;
            } else {
                return Err(args::syntax());
            }
            at += 1;
        }
        Ok(options)
    }

    /// BY with no `*` (`nosort`...): the elements keep their order.
    fn sorts(&self) -> bool {
        self.by.as_ref().is_none_or(|by| by.contains(&b'*'))
    }
}

/// Whether `args` (a SORT) names other keys by pattern: it must then run
/// with every shard locked.
pub(super) fn reads_patterns(args: &[Bytes]) -> bool {
    args.windows(2).skip(2).any(|pair| {
        (is(&pair[0], "by") && pair[1].contains(&b'*'))
            || (is(&pair[0], "get") && pair[1].as_ref() != b"#")
    })
}

pub(super) fn run(name: &[u8], space: &mut Keyspace<'_>, ctx: &Ctx<'_>) -> Out {
    let options = Options::parse(ctx.args, name == b"sort_ro")?;
    let elements = elements(space, ctx.key())?;
    let mut sorted = elements.items;
    if options.sorts() || (elements.is_set && options.store.is_some()) {
        sort(space, &mut sorted, &options)?;
    }
    let range = limit(options.limit, sorted.len());
    let mut out: Vec<Option<Bytes>> = Vec::new();
    for element in &sorted[range] {
        if options.gets.is_empty() {
            out.push(Some(element.clone()));
        }
        for pattern in &options.gets {
            out.push(lookup(space, pattern, element)?);
        }
    }
    let Some(destination) = options.store else {
        return Ok(Reply::Array(
            out.into_iter().map(Reply::bulk_or_null).collect(),
        ));
    };
    let mut list = List::default();
    for value in &out {
        list.push(value.clone().unwrap_or_default(), false);
    }
    space.store(&destination, Held::new(list))?;
    Ok(Reply::Integer(out.len() as i64))
}

struct Elements {
    items: Vec<Bytes>,
    is_set: bool,
}

/// The elements to sort: a list's in order, a set's, a sorted set's by
/// score; none for a missing key; WRONGTYPE for a hash or a string.
fn elements(space: &mut Keyspace<'_>, key: &[u8]) -> Result<Elements, Reply> {
    let Some(stored) = space.get(key)? else {
        return Ok(Elements {
            items: Vec::new(),
            is_set: false,
        });
    };
    let (items, is_set) = match stored.collection.as_deref() {
        Some(Collection::List(list)) => (list.items().iter().cloned().collect(), false),
        Some(Collection::Set(set)) => (set.iter().cloned().collect(), true),
        Some(Collection::SortedSet(zset)) => (zset.iter().map(|(m, _)| m.clone()).collect(), false),
        _ => return Err(args::wrong_type()),
    };
    Ok(Elements { items, is_set })
}

/// Orders the elements by themselves or by their BY values: numbers (a
/// missing BY value counts 0), or bytes with ALPHA (a missing one first);
/// equal numbers by the elements' bytes, as redis makes SORT deterministic.
fn sort(space: &mut Keyspace<'_>, elements: &mut [Bytes], options: &Options) -> Result<(), Reply> {
    let mut keyed: Vec<(Option<Bytes>, f64, Bytes)> = Vec::with_capacity(elements.len());
    for element in elements.iter() {
        let by = match &options.by {
            Some(pattern) => lookup(space, pattern, element)?,
            None => Some(element.clone()),
        };
        let score = match (&by, options.alpha) {
            (Some(value), false) => args::float_or(value, || {
                Reply::error("ERR One or more scores can't be converted into double")
            })?,
            _ => 0.0,
        };
        keyed.push((by, score, element.clone()));
    }
    keyed.sort_by(|a, b| {
        let order = match options.alpha {
            false => a.1.total_cmp(&b.1).then_with(|| a.2.cmp(&b.2)),
            true => a.0.cmp(&b.0),
        };
        if options.desc {
            order.reverse()
        } else {
            order
        }
    });
    for (slot, (_, _, element)) in elements.iter_mut().zip(keyed) {
        *slot = element;
    }
    Ok(())
}

/// LIMIT start count over `len` elements, as positions.
fn limit(limit: Option<(i64, i64)>, len: usize) -> std::ops::Range<usize> {
    let Some((start, count)) = limit else {
        return 0..len;
    };
    let len = len as i64;
    let start = start.max(0);
    let end = if count < 0 {
        len
    } else {
        (start + count).min(len)
    };
    if start >= len || end <= start {
        return 0..0;
    }
    start as usize..end as usize
}

/// What `pattern` names for `element`: `#` the element itself; otherwise
/// its first `*` replaced by the element, a string key's value, or with
/// `->field` after the `*` a hash's field. Nothing for a pattern with no
/// `*`, a missing key or field, or a key of another kind.
fn lookup(
    space: &mut Keyspace<'_>,
    pattern: &Bytes,
    element: &Bytes,
) -> Result<Option<Bytes>, Reply> {
    if pattern.as_ref() == b"#" {
        return Ok(Some(element.clone()));
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let arrow = pattern[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|at| star + 1 + at)
        .filter(|&at| at + 2 < pattern.len());
    let key_end = arrow.unwrap_or(pattern.len());
    let mut key = pattern[..star].to_vec();
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    let Some(stored) = space.get(&key)? else {
        return Ok(None);
    };
    Ok(match (arrow, stored.collection.as_deref()) {
        (None, None) => Some(stored.item.value.clone()),
        (Some(at), Some(collection)) => {
            use super::collections::Kind;
            Hash::of(collection).and_then(|hash| hash.get(&pattern[at + 2..]).cloned())
        }
        _ => None,
    })
}
