//! redis glob patterns (`KEYS`, `SCAN MATCH`, and `glob` routes).
//!
//! A port of redis's `stringmatchlen`, so a pattern matches here exactly what
//! it matches on a real redis: `*`, `?`, `[abc]`, `[^a-z]`, and `\` escapes, on
//! bytes, with no special meaning for `/`.

pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    // KEYS and SCAN short-circuit a lone '*' (so it matches even the empty
    // key, which stringmatchlen itself would not).
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer = false;
    match_from(pattern, string, &mut skip_longer)
}

fn match_from(mut p: &[u8], mut s: &[u8], skip_longer: &mut bool) -> bool {
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_from(&p[1..], s, skip_longer) {
                        return true;
                    }
                    // A later '*' already failed on every suffix: a longer
                    // match here cannot succeed either (redis's cut-off).
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                let (matched, rest) = match_class(&p[1..], s[0]);
                if !matched {
                    return false;
                }
                p = rest;
                s = &s[1..];
            }
            _ => {
                if p[0] == b'\\' && p.len() >= 2 {
                    p = &p[1..];
                }
                if p[0] != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// Matches one byte against a `[...]` class; `p` starts after the `[`.
/// Returns whether it matched and the pattern positioned on the closing `]`
/// (or the last byte, for an unterminated class, as redis does).
fn match_class(mut p: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        if p.is_empty() {
            // Unterminated: redis steps back onto the last pattern byte. An
            // empty remainder cannot be stepped back into here, so return a
            // one-byte slice that the caller's advance consumes.
            return (matched != negate, b"]");
        }
        if p[0] == b'\\' && p.len() >= 2 {
            p = &p[1..];
            if p[0] == c {
                matched = true;
            }
        } else if p[0] == b']' {
            break;
        } else if p.len() >= 3 && p[1] == b'-' {
            let (lo, hi) = if p[0] <= p[2] {
                (p[0], p[2])
            } else {
                (p[2], p[0])
            };
            if (lo..=hi).contains(&c) {
                matched = true;
            }
            p = &p[2..];
        } else if p[0] == c {
            matched = true;
        }
        if p.len() == 1 {
            return (matched != negate, p);
        }
        p = &p[1..];
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches_like_redis() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("?*", "", false),
            (":1:*", ":1:django.contrib.sessions.cacheabc", true),
            (":1:*", ":2:x", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("user_pk_*_restrict", "user_pk_42_restrict", true),
            ("[abc", "a", true),
            ("**a", "ba", true),
        ];
        for (pattern, string, want) in table {
            assert_eq!(
                glob_match(pattern.as_bytes(), string.as_bytes()),
                *want,
                "{pattern} ~ {string}"
            );
        }
    }
}
