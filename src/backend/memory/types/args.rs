//! Arguments read as redis reads them, and redis's error replies, word
//! for word.

use bytes::Bytes;
use keyway_protocol::resp::Reply;

pub(super) fn wrong_type() -> Reply {
    Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

pub(super) fn syntax() -> Reply {
    Reply::error("ERR syntax error")
}

pub(super) fn not_an_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

pub(super) fn not_a_float() -> Reply {
    Reply::error("ERR value is not a valid float")
}

pub(super) fn must_be_positive() -> Reply {
    Reply::error("ERR value is out of range, must be positive")
}

pub(super) fn no_such_key() -> Reply {
    Reply::error("ERR no such key")
}

pub(super) fn out_of_memory() -> Reply {
    Reply::error("OOM the value would be larger than the memory backend accepts for one key")
}

pub(super) fn wrong_arity(name: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name).to_ascii_lowercase()
    ))
}

/// redis's `string2ll`: an optional minus, digits, no leading zeros or
/// spaces, within 64 bits.
pub(super) fn int(arg: &[u8]) -> Result<i64, Reply> {
    let text = std::str::from_utf8(arg).map_err(|_| not_an_integer())?;
    let value: i64 = text.parse().map_err(|_| not_an_integer())?;
    if value.to_string() != text {
        return Err(not_an_integer());
    }
    Ok(value)
}

/// A count that must not be negative (SPOP, LPOP ... count).
pub(super) fn count(arg: &[u8]) -> Result<usize, Reply> {
    let value = int(arg).map_err(|_| must_be_positive())?;
    usize::try_from(value).map_err(|_| must_be_positive())
}

/// redis's `strtod` check: no leading space, the whole argument, not NaN.
pub(super) fn float_or(arg: &[u8], error: fn() -> Reply) -> Result<f64, Reply> {
    let text = std::str::from_utf8(arg).map_err(|_| error())?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(error());
    }
    let value: f64 = text.parse().map_err(|_| error())?;
    if value.is_nan() {
        return Err(error());
    }
    Ok(value)
}

pub(super) fn float(arg: &[u8]) -> Result<f64, Reply> {
    float_or(arg, not_a_float)
}

/// A double as redis 7.0 writes a score: C's `%.17g`.
pub(super) fn score_text(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // 17 significant digits, then %g's choice of notation.
    let scientific = format!("{value:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    if !(-4..17).contains(&exponent) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    }
    let decimals = (16 - exponent).max(0) as usize;
    trim_zeros(&format!("{value:.decimals$}")).to_string()
}

fn trim_zeros(number: &str) -> &str {
    if !number.contains('.') {
        return number;
    }
    number.trim_end_matches('0').trim_end_matches('.')
}

/// A score in a reply: a double under RESP3, `%.17g` text under RESP2.
pub(super) fn score(value: f64, resp3: bool) -> Reply {
    if resp3 {
        Reply::Double(value)
    } else {
        Reply::bulk(score_text(value))
    }
}

/// INCRBYFLOAT's and HINCRBYFLOAT's result text: the shortest that reads
/// back the same, never in exponent form (redis's human-friendly format).
pub(super) fn float_text(value: f64) -> String {
    format!("{value}")
}

/// A stored copy of a request's bytes (never a slice of the read buffer).
/// A start and stop index (negative: from the end; LRANGE, LTRIM, ZRANGE
/// by rank) as positions in a collection of `len`, clamped as redis does.
pub(super) fn index_range(start: i64, stop: i64, len: usize) -> std::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        stop + len
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return 0..0;
    }
    start as usize..stop as usize + 1
}

pub(super) fn owned(arg: &Bytes) -> Bytes {
    Bytes::copy_from_slice(arg)
}

/// Whether `arg` is the option `name`, in any case.
pub(super) fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// A numkeys argument (SINTERCARD, ZUNION, LMPOP...): between 1 and what
/// follows it, else redis's error for `name`.
pub(super) fn numkeys(args: &[Bytes], at: usize) -> Result<usize, Reply> {
    let n = int(&args[at]).map_err(|_| not_an_integer())?;
    if n <= 0 {
        return Err(Reply::error("ERR numkeys should be greater than 0"));
    }
    let n = n as usize;
    if n > args.len() - at - 1 {
        return Err(Reply::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(n)
}

/// A SCAN-family cursor and its MATCH and COUNT options (HSCAN, SSCAN, ZSCAN).
pub(super) struct ScanArgs {
    pub(super) cursor: usize,
    pub(super) pattern: Option<Bytes>,
    pub(super) count: usize,
}

impl ScanArgs {
    pub(super) fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let cursor = std::str::from_utf8(&args[2])
            .ok()
            .and_then(|c| c.parse::<u64>().ok())
            .ok_or_else(|| Reply::error("ERR invalid cursor"))?;
        let mut scan = ScanArgs {
            cursor: cursor as usize,
            pattern: None,
            count: 10,
        };
        let mut rest = args[3..].iter();
        while let Some(option) = rest.next() {
            let value = rest.next().ok_or_else(syntax)?;
            if is(option, "match") {
                scan.pattern = Some(value.clone());
            } else if is(option, "count") {
                let count = int(value)?;
                if count < 1 {
                    return Err(syntax());
                }
                scan.count = count as usize;
            } else {
                return Err(syntax());
            }
        }
        Ok(scan)
    }

    /// One page of `elements` (in the collection's order): a small
    /// collection whole, as redis answers its compact encodings; a larger
    /// one `count` at a time by position. The next cursor, and the page.
    pub(super) fn page<'e, T: 'e>(
        &self,
        elements: impl ExactSizeIterator<Item = T> + 'e,
        name: impl Fn(&T) -> &[u8],
    ) -> (usize, Vec<T>) {
        let len = elements.len();
        let (skip, take) = if len <= super::collections::COMPACT_ENTRIES {
            (0, len)
        } else {
            (self.cursor, self.count)
        };
        let page: Vec<T> = elements
            .skip(skip)
            .take(take)
            .filter(|e| {
                self.pattern
                    .as_ref()
                    .is_none_or(|p| crate::pattern::glob_match(p, name(e)))
            })
            .collect();
        let next = if skip + take >= len { 0 } else { skip + take };
        (next, page)
    }
}

/// A SCAN reply: the next cursor and the page.
pub(super) fn scan_reply(next: usize, page: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(page)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_read_as_redis_writes_them() {
        for (value, text) in [
            (1.1, "1.1000000000000001"),
            (3.0, "3"),
            (1e21, "1e+21"),
            (0.1, "0.10000000000000001"),
            (0.30000000000000004, "0.30000000000000004"),
            (-2.5, "-2.5"),
            (1e-5, "1.0000000000000001e-05"),
            (123456789.0, "123456789"),
            (f64::INFINITY, "inf"),
            (0.0, "0"),
        ] {
            assert_eq!(score_text(value), text, "{value}");
        }
    }
}
