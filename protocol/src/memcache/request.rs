//! memcached text request decoding.
//!
//! A request is one line, split on spaces, plus for storage commands a data
//! block of exactly the declared length followed by `\r\n`. The line is parsed
//! from a borrowed view first so that an incomplete storage request consumes
//! nothing; only a whole request is split off the buffer, and its keys and data
//! are zero-copy slices of it.

use bytes::{Buf, Bytes, BytesMut};
use nom::bytes::complete::{take_till1, take_while};
use nom::multi::fold_many0;
use nom::sequence::{preceded, terminated};
use nom::Offset;

use super::number::{strtoflags, strtol_i32, strtoull};

/// Per-item bookkeeping memcached counts against its item size limit (item header
/// with CAS, the key's terminator and the data block's `\r\n`). Counting it means
/// a value is refused at the same size a real memcached with the same `-I` refuses it.
pub const ITEM_OVERHEAD: usize = 56;

/// Limits enforced while decoding.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest key, in bytes (memcached: 250).
    pub max_key_length: usize,
    /// Longest command line other than get/gets/gat/gats (memcached: 2048).
    pub max_line: usize,
    /// Longest get/gets/gat/gats line; multi-key gets legitimately exceed 2 KiB.
    pub max_get_line: usize,
    /// Largest item (key + value + [`ITEM_OVERHEAD`]); larger values are swallowed and refused.
    pub max_item_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_length: 250,
            max_line: 2048,
            max_get_line: 1024 * 1024,
            max_item_size: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCommand {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get`/`gets`: hits only, in request order, then `END`.
    Get {
        keys: Vec<Bytes>,
        with_cas: bool,
    },
    /// `gat`/`gats`: get and touch.
    GetAndTouch {
        exptime: i32,
        keys: Vec<Bytes>,
        with_cas: bool,
    },
    Store {
        command: StoreCommand,
        key: Bytes,
        flags: u32,
        exptime: i32,
        data: Bytes,
        /// Only meaningful for `cas`.
        cas_unique: u64,
        noreply: bool,
    },
    /// A storage command whose data block exceeded the item size limit. The
    /// block has been (or is being) swallowed; memcached replies
    /// `SERVER_ERROR object too large for cache` and, for `set`, drops the old item.
    TooLarge {
        command: StoreCommand,
        key: Bytes,
        noreply: bool,
    },
    Delete {
        key: Bytes,
        noreply: bool,
    },
    /// `incr`/`decr`.
    Arith {
        key: Bytes,
        delta: u64,
        incr: bool,
        noreply: bool,
    },
    Touch {
        key: Bytes,
        exptime: i32,
        noreply: bool,
    },
    FlushAll {
        delay: i32,
        noreply: bool,
    },
    Version,
    Verbosity {
        noreply: bool,
    },
    Stats {
        args: Vec<Bytes>,
    },
    /// `lru_crawler <subcommand> [arg]` (metadump: every item's metadata).
    LruCrawler {
        args: Vec<Bytes>,
    },
    /// `cache_memlimit <megabytes>` (8 or more; memcached refuses less).
    CacheMemlimit {
        megabytes: u32,
        noreply: bool,
    },
    /// `mn`: the meta no-op, answered `MN`.
    MetaNoOp,
    /// `mg`, `ms`, `md`, `ma`, `me`.
    Meta(Box<super::meta::Meta>),
    /// `shutdown [graceful]`, which memcached refuses unless started with `-A`.
    Shutdown,
    Quit,
}

/// A request that could not be decoded. The offending line has been consumed
/// unless [`DecodeError::is_fatal`], in which case the stream cannot be framed
/// any more and the connection must be closed after the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Unknown command or wrong number of tokens: memcached's bare `ERROR`.
    #[error("ERROR")]
    UnknownCommand,
    /// `CLIENT_ERROR <message>`; the connection stays usable.
    #[error("CLIENT_ERROR {0}")]
    Client(&'static str),
    /// The data block was not followed by `\r\n`; silent under `noreply`, as in memcached.
    #[error("CLIENT_ERROR bad data chunk")]
    BadDataChunk { noreply: bool },
    /// No end of line within the configured limit.
    #[error("CLIENT_ERROR line too long")]
    LineTooLong,
    /// A refused command whose line ends in `noreply`: memcached answers
    /// nothing, not even the error.
    #[error("")]
    Silenced,
    /// A refused meta command: memcached's line as it is.
    #[error("{0}")]
    Meta(&'static str),
}

impl DecodeError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::LineTooLong)
    }
}

const BAD_FORMAT: &str = "bad command line format";

/// Stateful decoder: the only state is how much of a refused data block is
/// still to be discarded.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    limits: Limits,
    swallow: usize,
}

type Span = (usize, usize);

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Self { limits, swallow: 0 }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, DecodeError> {
        Ok(self.decode_raw(buf)?.map(|(request, _)| request))
    }

    /// Like [`Decoder::decode`], with the request's bytes as they came (its
    /// line and, for storage commands, its data block), for a proxy to
    /// forward. The request's keys and data are slices of those bytes. For
    /// [`Request::TooLarge`] they are the line alone: the block is discarded.
    pub fn decode_raw(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<(Request, Bytes)>, DecodeError> {
        if self.swallow > 0 {
            let n = self.swallow.min(buf.len());
            buf.advance(n);
            self.swallow -= n;
            if self.swallow > 0 {
                return Ok(None);
            }
        }
        let Some(newline) = memchr::memchr(b'\n', buf) else {
            return self.check_partial_line(buf).map(|()| None);
        };
        let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        let spans = tokenize(&buf[..line_end]);
        // Length first, for every line (blank ones too), so that the verdict
        // matches the one check_partial_line gives before the newline arrives.
        let command = spans.first().map(|&(start, end)| &buf[start..end]);
        let cap = if command.is_some_and(is_get_family) {
            self.limits.max_get_line
        } else {
            self.limits.max_line
        };
        if line_end > cap {
            return Err(DecodeError::LineTooLong);
        }
        let Some(command) = command else {
            // memcached answers an empty line with ERROR.
            buf.advance(newline + 1);
            return Err(DecodeError::UnknownCommand);
        };
        if let Some(meta) = super::meta::meta_command(command) {
            return self.decode_meta(buf, meta, &spans, newline);
        }
        if let Some(store) = store_command(command) {
            match self.decode_store(buf, store, &spans, newline)? {
                StoreOutcome::Incomplete => return Ok(None),
                StoreOutcome::Done(request, raw) => return Ok(Some((request, raw))),
            }
        }
        let line = buf.split_to(newline + 1).freeze();
        parse_simple(&line, &spans, &self.limits)
            .map(|request| Some((request, line.clone())))
            .map_err(|error| silenced(error, &line, &spans))
    }

    /// A line without its newline yet is too long only once its content must
    /// exceed its cap whatever comes next, so that the verdict never depends on
    /// how the bytes were split: one buffered byte may still be the `\r` of the
    /// terminator, and the cap (get-family or not) is only known once the
    /// command word is complete or can no longer become a get-family word.
    fn check_partial_line(&self, buf: &BytesMut) -> Result<(), DecodeError> {
        let len = buf.len();
        if len <= self.limits.max_line + 1 {
            return Ok(());
        }
        if len > self.limits.max_get_line.max(self.limits.max_line) + 1 {
            return Err(DecodeError::LineTooLong);
        }
        let Some(start) = buf.iter().position(|&b| b != b' ') else {
            return Ok(()); // only spaces so far: the command word is still to come
        };
        let word = &buf[start..];
        let could_be_get = match word.iter().position(|&b| b == b' ') {
            Some(end) => is_get_family(&word[..end]),
            None => [&b"gets"[..], b"gats"]
                .iter()
                .any(|get| get.starts_with(word)),
        };
        if could_be_get {
            Ok(())
        } else {
            Err(DecodeError::LineTooLong)
        }
    }

    fn decode_meta(
        &mut self,
        buf: &mut BytesMut,
        command: super::meta::MetaCommand,
        spans: &[Span],
        newline: usize,
    ) -> Result<Option<(Request, Bytes)>, DecodeError> {
        use super::meta::{parse_meta, MetaError};
        let tokens: Vec<&[u8]> = spans.iter().map(|&(s, e)| &buf[s..e]).collect();
        let parsed = parse_meta(command, &tokens, self.limits.max_key_length);
        let (mut meta, length) = match parsed {
            Ok(parsed) => parsed,
            Err((error, length)) => {
                buf.advance(newline + 1);
                // The data block is swallowed once its length is known.
                self.swallow = length.map_or(0, |n| n + 2);
                return Err(match error {
                    MetaError::Error => DecodeError::UnknownCommand,
                    MetaError::Line(line) => DecodeError::Meta(line),
                });
            }
        };
        let Some(vlen) = length else {
            let line = buf.split_to(newline + 1).freeze();
            return Ok(Some((Request::Meta(Box::new(meta)), line)));
        };
        if vlen + meta.key.len() + ITEM_OVERHEAD > self.limits.max_item_size {
            let line = buf.split_to(newline + 1).freeze();
            self.swallow = vlen + 2;
            let request = Request::TooLarge {
                command: StoreCommand::Set,
                key: meta.key.clone(),
                noreply: false,
            };
            return Ok(Some((request, line)));
        }
        let block_start = newline + 1;
        let total = block_start + vlen + 2;
        if buf.len() < total {
            return Ok(None);
        }
        let raw = buf.split_to(total).freeze();
        if &raw[total - 2..] != b"\r\n" {
            return Err(DecodeError::BadDataChunk { noreply: false });
        }
        meta.data = Some(raw.slice(block_start..block_start + vlen));
        Ok(Some((Request::Meta(Box::new(meta)), raw)))
    }

    fn decode_store(
        &mut self,
        buf: &mut BytesMut,
        command: StoreCommand,
        spans: &[Span],
        newline: usize,
    ) -> Result<StoreOutcome, DecodeError> {
        let header = match parse_store_header(buf, command, spans, &self.limits) {
            Ok(header) => header,
            Err(error) => {
                let error = silenced(error, buf, spans);
                buf.advance(newline + 1);
                return Err(error);
            }
        };
        let (key_start, key_end) = spans[1];
        let key_len = key_end - key_start;
        if header.vlen + key_len + ITEM_OVERHEAD > self.limits.max_item_size {
            let line = buf.split_to(newline + 1).freeze();
            self.swallow = header.vlen + 2;
            let request = Request::TooLarge {
                command,
                key: line.slice(key_start..key_end),
                noreply: header.noreply,
            };
            return Ok(StoreOutcome::Done(request, line));
        }
        let block_start = newline + 1;
        let total = block_start + header.vlen + 2;
        if buf.len() < total {
            return Ok(StoreOutcome::Incomplete);
        }
        let raw = buf.split_to(total).freeze();
        if &raw[total - 2..] != b"\r\n" {
            return Err(DecodeError::BadDataChunk {
                noreply: header.noreply,
            });
        }
        let request = Request::Store {
            command,
            key: raw.slice(key_start..key_end),
            flags: header.flags,
            exptime: header.exptime,
            data: raw.slice(block_start..block_start + header.vlen),
            cas_unique: header.cas_unique,
            noreply: header.noreply,
        };
        Ok(StoreOutcome::Done(request, raw))
    }
}

enum StoreOutcome {
    Incomplete,
    /// The request and its bytes.
    Done(Request, Bytes),
}

struct StoreHeader {
    flags: u32,
    exptime: i32,
    vlen: usize,
    cas_unique: u64,
    noreply: bool,
}

fn parse_store_header(
    line: &[u8],
    command: StoreCommand,
    spans: &[Span],
    limits: &Limits,
) -> Result<StoreHeader, DecodeError> {
    // Tokens after the command: key flags exptime bytes [cas] [noreply].
    let required = if command == StoreCommand::Cas { 6 } else { 5 };
    if spans.len() != required && spans.len() != required + 1 {
        return Err(DecodeError::UnknownCommand);
    }
    let token = |i: usize| &line[spans[i].0..spans[i].1];
    if token(1).len() > limits.max_key_length {
        return Err(DecodeError::Client(BAD_FORMAT));
    }
    let flags = strtoflags(token(2));
    let exptime = strtol_i32(token(3));
    let vlen = strtol_i32(token(4));
    let (Some(flags), Some(exptime), Some(vlen)) = (flags, exptime, vlen) else {
        return Err(DecodeError::Client(BAD_FORMAT));
    };
    let cas_unique = if command == StoreCommand::Cas {
        strtoull(token(5)).ok_or(DecodeError::Client(BAD_FORMAT))?
    } else {
        0
    };
    let vlen = usize::try_from(vlen).map_err(|_| DecodeError::Client(BAD_FORMAT))?;
    Ok(StoreHeader {
        flags,
        exptime,
        vlen,
        cas_unique,
        noreply: token(spans.len() - 1) == b"noreply",
    })
}

/// memcached reads `noreply` off a command's line before checking its
/// fields, so a refused line that ends in it gets no answer at all. Lines
/// refused before that (an unknown command, a wrong token count: `ERROR`)
/// are answered whatever they end in.
fn silenced(error: DecodeError, line: &[u8], spans: &[Span]) -> DecodeError {
    const TAKES_NOREPLY: &[&[u8]] = &[
        b"set",
        b"add",
        b"replace",
        b"append",
        b"prepend",
        b"cas",
        b"delete",
        b"incr",
        b"decr",
        b"touch",
        b"flush_all",
        b"verbosity",
        b"cache_memlimit",
    ];
    let token = |i: usize| &line[spans[i].0..spans[i].1];
    let quiet = spans.len() > 1
        && token(spans.len() - 1) == b"noreply"
        && TAKES_NOREPLY.contains(&token(0));
    match error {
        DecodeError::Client(_) if quiet => DecodeError::Silenced,
        DecodeError::UnknownCommand if quiet && token(0) == b"cache_memlimit" => {
            DecodeError::Silenced
        }
        other => other,
    }
}

/// `cache_memlimit <megabytes> [noreply]`.
fn cache_memlimit(megabytes: &[u8], noreply: bool) -> Result<Request, DecodeError> {
    let megabytes = strtoull(megabytes).ok_or(DecodeError::UnknownCommand)?;
    Ok(Request::CacheMemlimit {
        megabytes: megabytes as u32,
        noreply,
    })
}

/// `flush_all [delay] [noreply]`.
fn flush_all(delay: Option<Bytes>, noreply: bool) -> Result<Request, DecodeError> {
    let delay = match delay {
        None => 0,
        Some(delay) => strtol_i32(&delay).ok_or(DecodeError::Client("invalid exptime argument"))?,
    };
    Ok(Request::FlushAll { delay, noreply })
}

fn parse_simple(line: &Bytes, spans: &[Span], limits: &Limits) -> Result<Request, DecodeError> {
    let token = |i: usize| line.slice(spans[i].0..spans[i].1);
    let args = spans.len() - 1;
    let noreply = args > 0 && &line[spans[args].0..spans[args].1] == b"noreply";
    let key = |i: usize| -> Result<Bytes, DecodeError> {
        let key = token(i);
        if key.len() > limits.max_key_length {
            return Err(DecodeError::Client(BAD_FORMAT));
        }
        Ok(key)
    };
    let keys = |from: usize| (from..spans.len()).map(key).collect::<Result<Vec<_>, _>>();
    let rest = || (1..spans.len()).map(token).collect();
    match &line[spans[0].0..spans[0].1] {
        b"get" | b"gets" if args >= 1 => Ok(Request::Get {
            keys: keys(1)?,
            with_cas: spans[0].1 - spans[0].0 == 4,
        }),
        // No keys is not an error: memcached answers END.
        b"gat" | b"gats" if args >= 1 => Ok(Request::GetAndTouch {
            exptime: strtol_i32(&token(1))
                .ok_or(DecodeError::Client("invalid exptime argument"))?,
            keys: keys(2)?,
            with_cas: spans[0].1 - spans[0].0 == 4,
        }),
        b"delete" if (1..=3).contains(&args) => parse_delete(key(1)?, &line[..], spans, noreply),
        cmd @ (b"incr" | b"decr") if args == 2 || args == 3 => Ok(Request::Arith {
            key: key(1)?,
            delta: strtoull(&token(2))
                .ok_or(DecodeError::Client("invalid numeric delta argument"))?,
            incr: cmd == b"incr",
            noreply,
        }),
        b"touch" if args == 2 || args == 3 => Ok(Request::Touch {
            key: key(1)?,
            exptime: strtol_i32(&token(2))
                .ok_or(DecodeError::Client("invalid exptime argument"))?,
            noreply,
        }),
        // The first argument is the delay, unless it is a lone noreply.
        b"flush_all" if args <= 2 => flush_all(
            (args >= 1 && !(args == 1 && noreply)).then(|| token(1)),
            noreply,
        ),
        // memcached ignores what follows `version`, `quit` and `mn`.
        b"version" => Ok(Request::Version),
        // The level is read like `safe_strtoul` reads it, then ignored.
        b"verbosity" if args == 1 || args == 2 => strtoull(&token(1))
            .map(|_| Request::Verbosity { noreply })
            .ok_or(DecodeError::Client(BAD_FORMAT)),
        b"cache_memlimit" if args == 1 || args == 2 => cache_memlimit(&token(1), noreply),
        b"mn" => Ok(Request::MetaNoOp),
        b"shutdown" => Ok(Request::Shutdown),
        b"stats" => Ok(Request::Stats { args: rest() }),
        b"lru_crawler" => Ok(Request::LruCrawler { args: rest() }),
        b"quit" => Ok(Request::Quit),
        _ => Err(DecodeError::UnknownCommand),
    }
}

fn parse_delete(
    key: Bytes,
    line: &[u8],
    spans: &[Span],
    noreply: bool,
) -> Result<Request, DecodeError> {
    // memcached accepts a legacy hold time only if it is 0: `delete k [0] [noreply]`.
    let hold_is_zero = spans.len() > 2 && &line[spans[2].0..spans[2].1] == b"0";
    let valid = match spans.len() {
        2 => true,
        3 => hold_is_zero || noreply,
        _ => hold_is_zero && noreply,
    };
    if !valid {
        return Err(DecodeError::Client(
            "bad command line format.  Usage: delete <key> [noreply]",
        ));
    }
    Ok(Request::Delete { key, noreply })
}

/// A command line's tokens, as memcached splits it: runs of bytes other than
/// a space (tabs belong to tokens), any number of spaces between them.
fn tokenize(line: &[u8]) -> Vec<Span> {
    let token = preceded(
        take_while(|byte| byte == b' '),
        take_till1(|byte| byte == b' '),
    );
    let spans = fold_many0(
        token,
        || Vec::with_capacity(8),
        |mut spans, token: &[u8]| {
            let start = line.offset(token);
            spans.push((start, start + token.len()));
            spans
        },
    );
    // Cannot fail: what is left after the last token is spaces.
    terminated(spans, take_while(|byte| byte == b' '))(line).map_or_else(
        |_: nom::Err<nom::error::Error<&[u8]>>| Vec::new(),
        |(_, spans)| spans,
    )
}

fn is_get_family(command: &[u8]) -> bool {
    matches!(command, b"get" | b"gets" | b"gat" | b"gats")
}

fn store_command(command: &[u8]) -> Option<StoreCommand> {
    Some(match command {
        b"set" => StoreCommand::Set,
        b"add" => StoreCommand::Add,
        b"replace" => StoreCommand::Replace,
        b"append" => StoreCommand::Append,
        b"prepend" => StoreCommand::Prepend,
        b"cas" => StoreCommand::Cas,
        _ => return None,
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
