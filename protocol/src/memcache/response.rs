//! Decoding replies from a real memcached (the backend side of the proxy).
//!
//! One reply line at a time, plus the data block of `VALUE` and meta `VA`
//! lines, framed by their declared length. A multi-key get arrives as several
//! `Value`s then `End`; grouping them is the connection's job.

use bytes::{Bytes, BytesMut};

use super::number::{strtoflags, strtoull};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Value {
        key: Bytes,
        flags: u32,
        data: Bytes,
        cas: Option<u64>,
    },
    End,
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    /// incr/decr result.
    Number(u64),
    Version(Bytes),
    Stat(Bytes, Bytes),
    Error,
    ClientError(Bytes),
    ServerError(Bytes),
    /// A meta-protocol reply: `HD`, `VA`, `EN`, `NF`, `NS`, `EX`, `MN`, with
    /// its flag tokens (`t123`, `f16`, `c99`, ...) and, for `VA`, the data.
    Meta {
        code: [u8; 2],
        flags: Vec<Bytes>,
        data: Option<Bytes>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("memcached sent a reply Keyway cannot parse: {0:?}")]
    Malformed(String),
    #[error("memcached announced a {0}-byte value, over the limit")]
    TooLarge(usize),
}

/// Decodes one reply; `Ok(None)` means more bytes are needed (nothing consumed).
pub fn decode_response(
    buf: &mut BytesMut,
    max_value: usize,
) -> Result<Option<Response>, ResponseError> {
    Ok(decode_response_raw(buf, max_value)?.map(|(response, _)| response))
}

/// Like [`decode_response`], with the reply's bytes as they came (line and
/// data block), for a proxy to relay; the response's fields are slices of them.
pub fn decode_response_raw(
    buf: &mut BytesMut,
    max_value: usize,
) -> Result<Option<(Response, Bytes)>, ResponseError> {
    let Some(newline) = memchr::memchr(b'\n', buf) else {
        // No reply line is anywhere near this long; a server sending one is broken.
        if buf.len() > 8192 {
            return Err(malformed(&buf[..64]));
        }
        return Ok(None);
    };
    let end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let tokens: Vec<(usize, usize)> = split_spaces(&buf[..end]);
    let Some(&(start, stop)) = tokens.first() else {
        return Err(malformed(&buf[..end]));
    };
    let line = &buf[..end];
    let block_len = match &buf[start..stop] {
        b"VALUE" => Some(number_at(line, &tokens, 3)?),
        b"VA" => Some(number_at(line, &tokens, 1)?),
        _ => None,
    };
    if let Some(len) = block_len {
        if len > max_value {
            return Err(ResponseError::TooLarge(len));
        }
        if buf.len() < newline + 1 + len + 2 {
            return Ok(None);
        }
    }
    let block_start = newline + 1;
    if let Some(len) = block_len {
        let block = &buf[block_start..block_start + len + 2];
        if &block[len..] != b"\r\n" {
            return Err(malformed(&block[..len.min(64)]));
        }
    }
    let raw = buf
        .split_to(block_start + block_len.map_or(0, |len| len + 2))
        .freeze();
    let data = block_len.map(|len| raw.slice(block_start..block_start + len));
    let response = parse_line(&raw.slice(..block_start), &tokens, data)?;
    Ok(Some((response, raw)))
}

fn parse_line(
    line: &Bytes,
    tokens: &[(usize, usize)],
    data: Option<Bytes>,
) -> Result<Response, ResponseError> {
    let token = |i: usize| tokens.get(i).map(|&(s, e)| line.slice(s..e));
    let rest = |i: usize| {
        tokens.get(i).map_or_else(Bytes::new, |&(s, _)| {
            line.slice(s..tokens[tokens.len() - 1].1)
        })
    };
    let head = token(0).expect("checked non-empty");
    let response = match &head[..] {
        b"VALUE" => Response::Value {
            key: token(1).ok_or_else(|| malformed(line))?,
            flags: token(2)
                .as_deref()
                .and_then(strtoflags)
                .ok_or_else(|| malformed(line))?,
            data: data.expect("framed above"),
            cas: match token(4) {
                Some(cas) => Some(strtoull(&cas).ok_or_else(|| malformed(line))?),
                None => None,
            },
        },
        b"END" => Response::End,
        b"STORED" => Response::Stored,
        b"NOT_STORED" => Response::NotStored,
        b"EXISTS" => Response::Exists,
        b"NOT_FOUND" => Response::NotFound,
        b"DELETED" => Response::Deleted,
        b"TOUCHED" => Response::Touched,
        b"OK" => Response::Ok,
        b"VERSION" => Response::Version(rest(1)),
        b"STAT" => Response::Stat(token(1).unwrap_or_default(), rest(2)),
        b"ERROR" => Response::Error,
        b"CLIENT_ERROR" => Response::ClientError(rest(1)),
        b"SERVER_ERROR" => Response::ServerError(rest(1)),
        code @ (b"HD" | b"VA" | b"EN" | b"NF" | b"NS" | b"EX" | b"MN") => Response::Meta {
            code: [code[0], code[1]],
            flags: (if code == b"VA" { 2 } else { 1 }..tokens.len())
                .filter_map(token)
                .collect(),
            data,
        },
        digits if digits.iter().all(u8::is_ascii_digit) => {
            Response::Number(strtoull(digits).ok_or_else(|| malformed(line))?)
        }
        _ => return Err(malformed(line)),
    };
    Ok(response)
}

fn number_at(buf: &[u8], tokens: &[(usize, usize)], i: usize) -> Result<usize, ResponseError> {
    let &(s, e) = tokens.get(i).ok_or_else(|| malformed(buf))?;
    strtoull(&buf[s..e])
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(&buf[s..e]))
}

fn split_spaces(line: &[u8]) -> Vec<(usize, usize)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        match (b == b' ', start) {
            (true, Some(s)) => {
                tokens.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        tokens.push((s, line.len()));
    }
    tokens
}

fn malformed(bytes: &[u8]) -> ResponseError {
    ResponseError::Malformed(String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(input: &[u8]) -> Result<Vec<Response>, ResponseError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(response) = decode_response(&mut buf, 1 << 20)? {
            out.push(response);
        }
        Ok(out)
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn raw_bytes_are_each_reply_as_it_came() {
        let mut buf =
            BytesMut::from(&b"VALUE k 5 3 9\r\nabc\r\nEND\r\nSTORED\r\nVA 2 f1\r\nhi\r\nVAL"[..]);
        let mut raws = Vec::new();
        while let Some((_, raw)) = decode_response_raw(&mut buf, 1 << 20).unwrap() {
            raws.push(raw);
        }
        assert_eq!(
            raws,
            [
                b("VALUE k 5 3 9\r\nabc\r\n"),
                b("END\r\n"),
                b("STORED\r\n"),
                b("VA 2 f1\r\nhi\r\n")
            ]
        );
        assert_eq!(&buf[..], b"VAL");
    }

    #[test]
    fn classic_replies() {
        assert_eq!(
            all(b"VALUE k 16 8 42\r\na\r\nEND\r\n\r\nVALUE j 0 0\r\n\r\nEND\r\n"),
            Ok(vec![
                Response::Value {
                    key: b("k"),
                    flags: 16,
                    data: b("a\r\nEND\r\n"),
                    cas: Some(42)
                },
                Response::Value {
                    key: b("j"),
                    flags: 0,
                    data: Bytes::new(),
                    cas: None
                },
                Response::End,
            ])
        );
        assert_eq!(
            all(b"STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\nOK\r\n18446744073709551615\r\n"),
            Ok(vec![
                Response::Stored,
                Response::NotStored,
                Response::Exists,
                Response::NotFound,
                Response::Deleted,
                Response::Touched,
                Response::Ok,
                Response::Number(u64::MAX),
            ])
        );
        assert_eq!(
            all(b"VERSION 1.6.18\r\nSTAT curr_items 3\r\nERROR\r\nCLIENT_ERROR bad data chunk\r\nSERVER_ERROR out of memory storing object\r\n"),
            Ok(vec![
                Response::Version(b("1.6.18")),
                Response::Stat(b("curr_items"), b("3")),
                Response::Error,
                Response::ClientError(b("bad data chunk")),
                Response::ServerError(b("out of memory storing object")),
            ])
        );
    }

    #[test]
    fn meta_replies() {
        assert_eq!(
            all(b"HD t-1 f16\r\nVA 2 t99\r\nhi\r\nEN\r\n"),
            Ok(vec![
                Response::Meta {
                    code: *b"HD",
                    flags: vec![b("t-1"), b("f16")],
                    data: None
                },
                Response::Meta {
                    code: *b"VA",
                    flags: vec![b("t99")],
                    data: Some(b("hi"))
                },
                Response::Meta {
                    code: *b"EN",
                    flags: vec![],
                    data: None
                },
            ])
        );
    }

    #[test]
    fn broken_replies_are_errors() {
        // Found by the memcache_response fuzz target: the error names the line,
        // whatever else happens to be buffered behind it.
        assert_eq!(
            all(b"VALUE k\r\n\r\nEND\r\n"),
            Err(ResponseError::Malformed("VALUE k".into()))
        );
        assert!(all(b"VALUE k 0 2\r\nabcd\r\n").is_err());
        assert!(all(b"WHAT\r\n").is_err());
        assert!(all(b"\r\n").is_err());
        assert_eq!(
            all(b"VALUE k 0 99999999\r\n"),
            Err(ResponseError::TooLarge(99_999_999))
        );
    }

    const STREAM: &[u8] =
        b"VALUE a 1 3\r\nx\r\n\r\nEND\r\nSTORED\r\n7\r\nVA 1 f2\r\nz\r\nHD\r\nVERSION 1.6.18\r\n";

    proptest! {
        #[test]
        fn split_anywhere_decodes_the_same(split in 0..STREAM.len()) {
            let whole = all(STREAM).unwrap();
            let mut buf = BytesMut::from(&STREAM[..split]);
            let mut got = Vec::new();
            for chunk in [&STREAM[split..], &b""[..]] {
                while let Some(r) = decode_response(&mut buf, 1 << 20).unwrap() {
                    got.push(r);
                }
                buf.extend_from_slice(chunk);
            }
            prop_assert_eq!(got, whole);
        }
    }
}
