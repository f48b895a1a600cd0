//! Number parsing with memcached's exact acceptance rules.
//!
//! memcached parses numeric tokens with `strtol`/`strtoul` into 64-bit longs and
//! then narrows them, so `4294967295` as an exptime becomes -1 (pylibmc relies on
//! this), and a minus sign on an unsigned field is rejected rather than wrapped.

/// Parses like `safe_strtol`: a signed decimal that fits in an i64, narrowed to
/// i32 by truncation (two's complement wrap), exactly as memcached stores it.
pub fn strtol_i32(token: &[u8]) -> Option<i32> {
    let (negative, digits) = split_sign(token);
    let magnitude = parse_digits(digits)?;
    let value: i64 = if negative {
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some(value as i32)
}

/// Parses like `safe_strtoull`: an unsigned decimal; a negative value is refused
/// (memcached refuses it too, except the harmless `-0`).
pub fn strtoull(token: &[u8]) -> Option<u64> {
    let (negative, digits) = split_sign(token);
    let magnitude = parse_digits(digits)?;
    if negative && magnitude != 0 {
        return None;
    }
    Some(magnitude)
}

/// Parses a 32-bit flags word like `safe_strtoflags` (`safe_strtoul` on a
/// 64-bit build): any unsigned 64-bit number, truncated to 32 bits, so
/// `4294967296` stores 0, as memcached 1.6 does.
pub fn strtoflags(token: &[u8]) -> Option<u32> {
    strtoull(token).map(|flags| flags as u32)
}

fn split_sign(token: &[u8]) -> (bool, &[u8]) {
    match token.first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    }
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_wraps_like_memcached() {
        let table: &[(&[u8], Option<i32>)] = &[
            (b"0", Some(0)),
            (b"60", Some(60)),
            (b"-1", Some(-1)),
            (b"+5", Some(5)),
            (b"4294967295", Some(-1)),
            (b"2147483648", Some(i32::MIN)),
            (b"9223372036854775807", Some(-1)),
            (b"9223372036854775808", None),
            (b"-9223372036854775808", Some(0)),
            (b"12a", None),
            (b"", None),
            (b"-", None),
        ];
        for (input, want) in table {
            assert_eq!(
                strtol_i32(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn unsigned_fields_refuse_negatives() {
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"-1"), None);
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoflags(b"4294967295"), Some(u32::MAX));
        assert_eq!(strtoflags(b"4294967296"), Some(0));
        assert_eq!(strtoflags(b"18446744073709551615"), Some(u32::MAX));
        assert_eq!(strtoflags(b"18446744073709551616"), None);
        assert_eq!(strtoflags(b"x"), None);
    }
}
