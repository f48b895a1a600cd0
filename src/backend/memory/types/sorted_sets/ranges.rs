//! Ranges of a sorted set by rank, score or member, read as redis 7.0's
//! `zrangeGenericCommand` reads them (ZRANGE and its older forms,
//! ZRANGESTORE, ZCOUNT, ZLEXCOUNT, ZREMRANGEBY*).

use std::ops::Bound;

use bytes::Bytes;
use keyway_protocol::resp::Reply;

use super::super::args::{self, int, is};
use super::super::collections::SortedSet;

#[derive(Clone)]
enum By {
    Rank(i64, i64),
    Score(Bound<f64>, Bound<f64>),
    Lex(Lex, Lex),
}

/// One end of a range of members: `-`, `+`, `[a` or `(a`.
#[derive(Clone)]
enum Lex {
    BelowAll,
    AboveAll,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

/// A range and how to read it.
pub(super) struct Query {
    by: By,
    reverse: bool,
    /// LIMIT offset count (count < 0: no limit).
    limit: Option<(i64, i64)>,
    pub(super) with_scores: bool,
}

/// What a query found, in the order asked.
#[derive(Default)]
pub(super) struct Selection {
    pub(super) items: Vec<(Bytes, f64)>,
}

impl Selection {
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Auto,
    Rank,
    Score,
    Lex,
}

impl Query {
    /// `rest`: the arguments after the key (ZRANGESTORE: after the
    /// source), for the command `name`.
    pub(super) fn parse(name: &[u8], rest: &[Bytes]) -> Result<Self, Reply> {
        let (mut kind, mut reverse) = match name {
            b"zrange" | b"zrangestore" => (Kind::Auto, None),
            b"zrevrange" => (Kind::Rank, Some(true)),
            b"zrangebyscore" => (Kind::Score, Some(false)),
            b"zrevrangebyscore" => (Kind::Score, Some(true)),
            b"zrangebylex" => (Kind::Lex, Some(false)),
            _ => (Kind::Lex, Some(true)),
        };
        let store = name == b"zrangestore";
        let (mut with_scores, mut limit) = (false, None);
        let mut at = 2;
        while at < rest.len() {
            let option = &rest[at];
            let left = rest.len() - at - 1;
            if !store && is(option, "withscores") {
                with_scores = true;
            } else if is(option, "limit") && left >= 2 {
                limit = Some((int(&rest[at + 1])?, int(&rest[at + 2])?));
                at += 2;
            } else if reverse.is_none() && is(option, "rev") {
                reverse = Some(true);
            } else if kind == Kind::Auto && is(option, "bylex") {
                kind = Kind::Lex;
            } else if kind == Kind::Auto && is(option, "byscore") {
                kind = Kind::Score;
            } else {
                return Err(args::syntax());
            }
            at += 1;
        }
        let reverse = reverse.unwrap_or(false);
        if kind == Kind::Auto {
            kind = Kind::Rank;
        }
        if limit.is_some() && kind == Kind::Rank {
            return Err(Reply::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE \
                 or BYLEX",
            ));
        }
        if with_scores && kind == Kind::Lex {
            return Err(Reply::error(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        // Reversed score and member ranges are given max first.
        let (min, max) = match reverse && kind != Kind::Rank {
            true => (&rest[1], &rest[0]),
            false => (&rest[0], &rest[1]),
        };
        Ok(Query {
            by: By::parse(kind, min, max)?,
            reverse,
            limit,
            with_scores,
        })
    }

    /// ZCOUNT, ZLEXCOUNT and ZREMRANGEBY{RANK,SCORE,LEX}: `min` and `max`.
    pub(super) fn counting(name: &[u8], min: &Bytes, max: &Bytes) -> Result<Self, Reply> {
        let kind = match name {
            b"zremrangebyrank" => Kind::Rank,
            b"zcount" | b"zremrangebyscore" => Kind::Score,
            _ => Kind::Lex,
        };
        Ok(Query {
            by: By::parse(kind, min, max)?,
            reverse: false,
            limit: None,
            with_scores: false,
        })
    }

    pub(super) fn select(&self, zset: &SortedSet) -> Selection {
        let len = zset.len();
        let ordered: Box<dyn Iterator<Item = (&Bytes, f64)>> = match self.reverse {
            false => Box::new(zset.iter()),
            true => Box::new(zset.iter().rev()),
        };
        let items: Vec<(Bytes, f64)> = match &self.by {
            By::Rank(start, stop) => {
                let range = args::index_range(*start, *stop, len);
                ordered
                    .skip(range.start)
                    .take(range.len())
                    .map(|(m, s)| (m.clone(), s))
                    .collect()
            }
            By::Score(min, max) => {
                let inside = |s: f64| within(&s, min, max);
                self.limited(ordered.filter(|(_, s)| inside(*s)))
            }
            By::Lex(min, max) => {
                let inside = |m: &Bytes| lex_above(m, min) && lex_below(m, max);
                self.limited(ordered.filter(|(m, _)| inside(m)))
            }
        };
        Selection { items }
    }

    /// LIMIT offset count over what matched: a negative offset matches
    /// nothing, a negative count no limit (as redis).
    fn limited<'z>(&self, found: impl Iterator<Item = (&'z Bytes, f64)>) -> Vec<(Bytes, f64)> {
        let (offset, count) = self.limit.unwrap_or((0, -1));
        if offset < 0 {
            return Vec::new();
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        found
            .skip(offset as usize)
            .take(count)
            .map(|(m, s)| (m.clone(), s))
            .collect()
    }
}

impl By {
    fn parse(kind: Kind, min: &Bytes, max: &Bytes) -> Result<Self, Reply> {
        Ok(match kind {
            Kind::Auto | Kind::Rank => By::Rank(int(min)?, int(max)?),
            Kind::Score => {
                let bad = || Reply::error("ERR min or max is not a float");
                By::Score(
                    score_bound(min).ok_or_else(bad)?,
                    score_bound(max).ok_or_else(bad)?,
                )
            }
            Kind::Lex => {
                let bad = || Reply::error("ERR min or max not valid string range item");
                By::Lex(lex(min).ok_or_else(bad)?, lex(max).ok_or_else(bad)?)
            }
        })
    }
}

/// `1.5`, `(1.5`, `-inf`, `+inf`.
fn score_bound(arg: &[u8]) -> Option<Bound<f64>> {
    let (exclusive, number) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let value = args::float(number).ok()?;
    Some(match exclusive {
        true => Bound::Excluded(value),
        false => Bound::Included(value),
    })
}

/// `[a`, `(a`, `-` (below everything), `+` (above everything).
fn lex(arg: &Bytes) -> Option<Lex> {
    match arg.first()? {
        b'-' if arg.len() == 1 => Some(Lex::BelowAll),
        b'+' if arg.len() == 1 => Some(Lex::AboveAll),
        b'[' => Some(Lex::Inclusive(arg.slice(1..))),
        b'(' => Some(Lex::Exclusive(arg.slice(1..))),
        _ => None,
    }
}

fn lex_above(member: &Bytes, min: &Lex) -> bool {
    match min {
        Lex::BelowAll => true,
        Lex::AboveAll => false,
        Lex::Inclusive(min) => member >= min,
        Lex::Exclusive(min) => member > min,
    }
}

fn lex_below(member: &Bytes, max: &Lex) -> bool {
    match max {
        Lex::BelowAll => false,
        Lex::AboveAll => true,
        Lex::Inclusive(max) => member <= max,
        Lex::Exclusive(max) => member < max,
    }
}

fn within(value: &f64, min: &Bound<f64>, max: &Bound<f64>) -> bool {
    let above = match min {
        Bound::Included(min) => value >= min,
        Bound::Excluded(min) => value > min,
        Bound::Unbounded => true,
    };
    let below = match max {
        Bound::Included(max) => value <= max,
        Bound::Excluded(max) => value < max,
        Bound::Unbounded => true,
    };
    above && below
}
