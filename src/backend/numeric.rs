//! incr/decr arithmetic on stored decimal strings, shared by every backend so
//! that memcached's and redis's rules are applied identically everywhere.

use bytes::Bytes;

use super::{BackendError, Result};
use crate::op::{Arith, ArithOutcome};

/// Applies `arith` to `current` (None = absent) and returns the new value to
/// store and the reply. For memcached an absent key is `NotFound` and nothing
/// is stored.
pub fn apply(arith: Arith, current: Option<&[u8]>) -> Result<Option<(Bytes, ArithOutcome)>> {
    match arith {
        Arith::Memcache { delta, incr } => {
            let Some(current) = current else {
                return Ok(None);
            };
            let value = parse_memcache(current).ok_or(BackendError::NotANumber)?;
            let next = if incr {
                value.wrapping_add(delta)
            } else {
                value.saturating_sub(delta)
            };
            let mut text = next.to_string().into_bytes();
            // memcached rewrites a shorter result in place, padding with spaces.
            if text.len() < current.len() {
                text.resize(current.len(), b' ');
            }
            Ok(Some((Bytes::from(text), ArithOutcome::Unsigned(next))))
        }
        Arith::Redis(delta) => {
            let value = match current {
                None => 0,
                Some(current) => parse_redis(current).ok_or(BackendError::NotAnInteger)?,
            };
            let next = value.checked_add(delta).ok_or(BackendError::Overflow)?;
            Ok(Some((
                Bytes::from(next.to_string()),
                ArithOutcome::Signed(next),
            )))
        }
    }
}

/// memcached's `safe_strtoull` on item data: optional leading whitespace,
/// digits, then the end or whitespace.
fn parse_memcache(data: &[u8]) -> Option<u64> {
    let start = data.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits_end = data[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(data.len(), |i| start + i);
    if digits_end == start {
        return None;
    }
    if digits_end < data.len() && !data[digits_end].is_ascii_whitespace() {
        return None;
    }
    std::str::from_utf8(&data[start..digits_end])
        .ok()?
        .parse()
        .ok()
}

/// redis's `string2ll`: the whole value is a canonical signed 64-bit integer.
fn parse_redis(data: &[u8]) -> Option<i64> {
    if data.is_empty() || data.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let value: i64 = text.parse().ok()?;
    // Reject what string2ll rejects: '+', leading zeros, "-0".
    (value.to_string() == text).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mc(delta: u64, incr: bool, current: &str) -> Result<Option<(Bytes, ArithOutcome)>> {
        apply(Arith::Memcache { delta, incr }, Some(current.as_bytes()))
    }

    #[test]
    fn memcache_rules() {
        assert_eq!(
            mc(1, false, "10"),
            Ok(Some((Bytes::from("9 "), ArithOutcome::Unsigned(9))))
        );
        assert_eq!(
            mc(u64::MAX, true, "9 "),
            Ok(Some((Bytes::from("8 "), ArithOutcome::Unsigned(8))))
        );
        assert_eq!(
            mc(100, false, "8"),
            Ok(Some((Bytes::from("0"), ArithOutcome::Unsigned(0))))
        );
        assert_eq!(mc(1, true, "abc"), Err(BackendError::NotANumber));
        assert_eq!(mc(1, true, ""), Err(BackendError::NotANumber));
        assert_eq!(
            apply(
                Arith::Memcache {
                    delta: 1,
                    incr: true
                },
                None
            ),
            Ok(None)
        );
    }

    #[test]
    fn redis_rules() {
        let r =
            |delta, current: Option<&str>| apply(Arith::Redis(delta), current.map(str::as_bytes));
        assert_eq!(
            r(5, None),
            Ok(Some((Bytes::from("5"), ArithOutcome::Signed(5))))
        );
        assert_eq!(
            r(-7, Some("2")),
            Ok(Some((Bytes::from("-5"), ArithOutcome::Signed(-5))))
        );
        assert_eq!(
            r(1, Some(&i64::MAX.to_string())),
            Err(BackendError::Overflow)
        );
        assert_eq!(r(1, Some("01")), Err(BackendError::NotAnInteger));
        assert_eq!(r(1, Some("1.5")), Err(BackendError::NotAnInteger));
        assert_eq!(r(1, Some(" 1")), Err(BackendError::NotAnInteger));
    }
}
