//! RESP request decoding: arrays of bulk strings and inline commands.
//!
//! Our own flat parser rather than redis-protocol's, because a request is never
//! nested, must obey limits before anything is allocated, and may be an inline
//! command typed into telnet or redis-cli. Error texts are redis 7's, and every
//! decode error is fatal: redis replies and closes, since the stream can no
//! longer be framed.

use bytes::{Bytes, BytesMut};

/// Limits enforced while decoding.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most arguments in one command (redis: 1024*1024 for `*<n>`).
    pub max_args: usize,
    /// Largest bulk argument, in bytes (redis `proto-max-bulk-len`: 512 MiB).
    pub max_bulk: usize,
    /// Longest inline command or `*`/`$` header line (redis: 64 KiB).
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_args: 1024 * 1024,
            max_bulk: 512 * 1024 * 1024,
            max_inline: 64 * 1024,
        }
    }
}

/// One decoded command: its arguments, and the exact bytes it arrived as (so a
/// proxy can forward it without re-encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub args: Vec<Bytes>,
    pub raw: Bytes,
}

impl Command {
    /// The command name, upper-cased for matching.
    pub fn name(&self) -> Vec<u8> {
        self.args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

/// redis's limits on a client that has not authenticated (networking.c,
/// since 6.2.7 and 7.0.0: the class of CVE-2025-21605): a longer array or
/// a larger bulk is a protocol error, so a stranger cannot make the server
/// hold more than a few KiB before it knows who it is.
pub const UNAUTHENTICATED_MAX_ARGS: usize = 10;
pub const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Decoder {
    limits: Limits,
    /// The connection must still authenticate: redis's tighter limits apply.
    unauthenticated: bool,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            unauthenticated: false,
        }
    }

    /// Whether the next commands come from a client that must still
    /// authenticate ([`UNAUTHENTICATED_MAX_ARGS`], [`UNAUTHENTICATED_MAX_BULK`]).
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    /// Decodes the next non-empty command. Empty ones (`*0`, `*-1`, a blank
    /// inline line) are consumed and skipped, as redis does.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, DecodeError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            let parsed = if buf[0] == b'*' {
                self.parse_multibulk(buf)?
            } else {
                self.parse_inline(buf)?
            };
            let Some((spans, consumed)) = parsed else {
                return Ok(None);
            };
            let raw = buf.split_to(consumed).freeze();
            if spans.is_empty() {
                continue;
            }
            let args = spans
                .into_iter()
                .map(|span| materialize(&raw, span))
                .collect();
            return Ok(Some(Command { args, raw }));
        }
    }

    fn parse_multibulk(&self, buf: &[u8]) -> Result<Option<(Vec<Span>, usize)>, DecodeError> {
        let Some((count, mut pos)) = header_line(buf, 0, self.limits.max_inline)
            .map_err(|()| DecodeError::TooBigMultibulkCount)?
        else {
            return Ok(None);
        };
        let count = parse_i64(count).ok_or(DecodeError::InvalidMultibulkLength)?;
        if count > self.limits.max_args as i64 {
            return Err(DecodeError::InvalidMultibulkLength);
        }
        if self.unauthenticated && count > UNAUTHENTICATED_MAX_ARGS as i64 {
            return Err(DecodeError::UnauthenticatedMultibulkLength);
        }
        if count <= 0 {
            return Ok(Some((Vec::new(), pos)));
        }
        // Never trust the declared count for an allocation.
        let mut spans = Vec::with_capacity((count as usize).min(64));
        for _ in 0..count {
            let Some(&marker) = buf.get(pos) else {
                return Ok(None);
            };
            if marker != b'$' {
                return Err(DecodeError::ExpectedBulk(marker));
            }
            let Some((len, data_start)) = header_line(buf, pos, self.limits.max_inline)
                .map_err(|()| DecodeError::TooBigBulkCount)?
            else {
                return Ok(None);
            };
            let len = parse_i64(len)
                .filter(|&len| len >= 0 && len as u64 <= self.limits.max_bulk as u64)
                .ok_or(DecodeError::InvalidBulkLength)? as usize;
            if self.unauthenticated && len > UNAUTHENTICATED_MAX_BULK {
                return Err(DecodeError::UnauthenticatedBulkLength);
            }
            // Like redis, the two bytes after the data are skipped, not checked.
            let end = data_start + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            spans.push(Span::Slice(data_start, data_start + len));
            pos = end;
        }
        Ok(Some((spans, pos)))
    }

    fn parse_inline(&self, buf: &[u8]) -> Result<Option<(Vec<Span>, usize)>, DecodeError> {
        let Some(newline) = memchr::memchr(b'\n', buf) else {
            if buf.len() > self.limits.max_inline {
                return Err(DecodeError::TooBigInline);
            }
            return Ok(None);
        };
        if newline > self.limits.max_inline {
            return Err(DecodeError::TooBigInline);
        }
        let end = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        let spans = super::inline::split(&buf[..end])?;
        if spans.len() > self.limits.max_args {
            return Err(DecodeError::InvalidMultibulkLength);
        }
        Ok(Some((spans, newline + 1)))
    }
}

/// Where an argument lives: a slice of the raw request, or (for quoted inline
/// arguments with escapes) bytes of its own.
#[derive(Debug)]
pub(super) enum Span {
    Slice(usize, usize),
    Owned(Vec<u8>),
}

fn materialize(raw: &Bytes, span: Span) -> Bytes {
    match span {
        Span::Slice(start, end) => raw.slice(start..end),
        Span::Owned(bytes) => Bytes::from(bytes),
    }
}

/// Finds the `\r`-terminated header starting at `start` (`*<n>` or `$<n>`), as redis
/// does. Returns the number text and the position after `\r\n`; `Err` if no `\r`
/// appears within `max` bytes.
#[allow(clippy::type_complexity)]
fn header_line(buf: &[u8], start: usize, max: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let rest = &buf[start..];
    match memchr::memchr(b'\r', rest) {
        Some(cr) if cr > max => Err(()),
        Some(cr) if rest.len() < cr + 2 => Ok(None),
        Some(cr) => Ok(Some((&rest[1..cr], start + cr + 2))),
        None if rest.len() > max => Err(()),
        None => Ok(None),
    }
}

/// redis's `string2ll`: optional '-', digits, no '+', no leading zeros, no spaces.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first()? {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
