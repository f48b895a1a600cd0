//! RESP3 replies from redis, framed and parsed here rather than by
//! redis-protocol: its decoders put a set's members and a map's keys into
//! hash sets, which refuse arrays — valid RESP3 that redis sends (COMMAND's
//! reply; a RESP3 script returning a set of tables) — and a framing error on
//! a shared backend connection fails every request in flight on it. Framing
//! walks the reply without recursion, counting the elements still owed;
//! parsing recurses over an already-framed reply, to a bounded depth.

use bytes::Bytes;

use super::Reply;

/// How deeply aggregates may nest in a reply Keyway parses (framing, which
/// only counts, has no such bound).
const MAX_DEPTH: usize = 128;

/// The length of the one whole reply at the front of `buf`; `None` until
/// it has all arrived.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut owed: u64 = 1;
    let mut pos = 0;
    while owed > 0 {
        let Some((kind, line, next)) = header(buf, pos)? else {
            return Ok(None);
        };
        owed -= 1;
        pos = next;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'!' | b'=' => match number(line)? {
                -1 if kind == b'$' => {}
                len if len >= 0 => {
                    let end = (len as usize)
                        .checked_add(pos + 2)
                        .ok_or("length overflows")?;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    pos = end;
                }
                len => return Err(format!("invalid length {len}")),
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => match number(line)? {
                -1 if kind == b'*' => {}
                n if n >= 0 => {
                    let n = n as u64;
                    owed = owed.saturating_add(match kind {
                        b'%' => 2 * n,
                        // An attribute map, then the reply it describes.
                        b'|' => 2 * n + 1,
                        _ => n,
                    });
                }
                n => return Err(format!("invalid count {n}")),
            },
            other => return Err(format!("unknown type byte {other:#04x}")),
        }
    }
    Ok(Some(pos))
}

/// A reply's first line: its type byte, the rest of the line, and where
/// the next line starts.
type Header<'a> = (u8, &'a [u8], usize);

/// The header at `pos`; `None` until the line has arrived.
fn header(buf: &[u8], pos: usize) -> Result<Option<Header<'_>>, String> {
    let Some(rest) = buf.get(pos..).filter(|rest| !rest.is_empty()) else {
        return Ok(None);
    };
    let Some(newline) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    if newline == 0 {
        return Err("an empty line where a reply was expected".into());
    }
    Ok(Some((rest[0], &rest[1..newline], pos + newline + 2)))
}

fn number(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("not a number: {:?}", String::from_utf8_lossy(line)))
}

/// The [`Reply`] tree of one whole reply (as [`reply_len`] framed it).
pub fn parse(raw: &Bytes) -> Result<Reply, String> {
    let (reply, _) = parse_at(raw, 0, 0)?;
    Ok(reply)
}

fn parse_at(raw: &Bytes, pos: usize, depth: usize) -> Result<(Reply, usize), String> {
    if depth > MAX_DEPTH {
        return Err(format!("reply nested deeper than {MAX_DEPTH}"));
    }
    let (kind, line, next) = header(raw, pos)?.ok_or("incomplete reply")?;
    Ok(match kind {
        b'+' => (Reply::Simple(slice(raw, pos + 1, line.len())?), next),
        b'-' => (
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            next,
        ),
        b':' => (Reply::Integer(number(line)?), next),
        b'_' => (Reply::Null, next),
        b',' => (Reply::Double(parse_double(line)?), next),
        b'#' => (Reply::Boolean(line == b"t"), next),
        b'(' => (Reply::Bulk(slice(raw, pos + 1, line.len())?), next),
        b'$' | b'!' | b'=' => blob(raw, kind, number(line)?, next)?,
        b'*' | b'>' | b'~' | b'%' | b'|' => aggregate(raw, kind, number(line)?, next, depth)?,
        other => return Err(format!("unknown type byte {other:#04x}")),
    })
}

/// `len` bytes of `raw` from `from`.
fn slice(raw: &Bytes, from: usize, len: usize) -> Result<Bytes, String> {
    let end = from.checked_add(len).ok_or("length overflows")?;
    raw.get(from..end)
        .map(|_| raw.slice(from..end))
        .ok_or_else(|| "incomplete reply".to_string())
}

/// A blob string, blob error or verbatim string of `len` bytes at `next`.
fn blob(raw: &Bytes, kind: u8, len: i64, next: usize) -> Result<(Reply, usize), String> {
    if len == -1 {
        return Ok((Reply::Null, next));
    }
    let len = usize::try_from(len).map_err(|_| format!("invalid length {len}"))?;
    let data = slice(raw, next, len)?;
    let after = next + len + 2;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(match kind {
        b'!' => (Reply::Error(text(&data)), after),
        // `txt:` or `mkd:`, then the text.
        b'=' => (
            Reply::Verbatim(text(data.get(4..).unwrap_or_default())),
            after,
        ),
        _ => (Reply::Bulk(data), after),
    })
}

/// An array, push, set, map or attribute of `count` entries at `next`.
fn aggregate(
    raw: &Bytes,
    kind: u8,
    count: i64,
    next: usize,
    depth: usize,
) -> Result<(Reply, usize), String> {
    if count == -1 && kind == b'*' {
        return Ok((Reply::Null, next));
    }
    let items = match kind {
        b'%' | b'|' => count.checked_mul(2).ok_or("count overflows")?,
        _ => count,
    };
    let mut parsed = Vec::with_capacity(items.clamp(0, 1024) as usize);
    let mut at = next;
    for _ in 0..items {
        let (item, after) = parse_at(raw, at, depth + 1)?;
        parsed.push(item);
        at = after;
    }
    Ok(match kind {
        b'~' => (Reply::Set(parsed), at),
        b'%' => {
            let mut flat = parsed.into_iter();
            let pairs = std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect();
            (Reply::Map(pairs), at)
        }
        // Attributes describe the reply that follows; Keyway passes on that.
        b'|' => parse_at(raw, at, depth + 1)?,
        _ => (Reply::Array(parsed), at),
    })
}

fn parse_double(line: &[u8]) -> Result<f64, String> {
    let text = std::str::from_utf8(line).map_err(|_| "a double that is not text")?;
    text.parse().map_err(|_| format!("not a double: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_arrays_and_repeated_members_are_framed_and_kept() {
        let raw = Bytes::from_static(
            b"~3\r\n*2\r\n$3\r\nget\r\n:2\r\n*1\r\n:1\r\n*1\r\n:1\r\n+after\r\n",
        );
        let len = reply_len(&raw).unwrap().unwrap();
        assert_eq!(&raw[len..], b"+after\r\n");
        let one = || Reply::Array(vec![Reply::Integer(1)]);
        assert_eq!(
            parse(&raw.slice(..len)).unwrap(),
            Reply::Set(vec![
                Reply::Array(vec![Reply::Bulk("get".into()), Reply::Integer(2)]),
                one(),
                one(),
            ])
        );
    }

    #[test]
    fn every_type_and_every_split_point() {
        let raw: &[u8] = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.5\r\n\
            %3\r\n$1\r\nm\r\n*3\r\n_\r\n#t\r\n(123456789012345678901234567890\r\n\
            $1\r\nv\r\n=8\r\ntxt:some\r\n$1\r\ne\r\n!5\r\nERR x\r\n";
        for cut in 0..raw.len() {
            assert_eq!(reply_len(&raw[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(reply_len(raw).unwrap(), Some(raw.len()));
        assert_eq!(
            parse(&Bytes::copy_from_slice(raw)).unwrap(),
            Reply::Map(vec![
                (
                    Reply::Bulk("m".into()),
                    Reply::Array(vec![
                        Reply::Null,
                        Reply::Boolean(true),
                        Reply::Bulk("123456789012345678901234567890".into()),
                    ])
                ),
                (Reply::Bulk("v".into()), Reply::Verbatim("some".into())),
                (Reply::Bulk("e".into()), Reply::Error("ERR x".into())),
            ])
        );
    }

    #[test]
    fn malformed_and_deep_replies_are_errors_not_panics() {
        assert!(reply_len(b"?3\r\n").is_err());
        assert!(reply_len(b"$-5\r\n").is_err());
        assert!(reply_len(b"*x\r\n").is_err());
        assert!(reply_len(b"\r\n").is_err());
        assert!(reply_len(b"*2\r\n:1\r\n\r\n").is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert_eq!(reply_len(deep.as_bytes()).unwrap(), Some(deep.len()));
        assert!(parse(&Bytes::from(deep)).is_err());
    }
}
