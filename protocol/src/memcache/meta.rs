//! memcached 1.6's meta commands (`mg`, `ms`, `md`, `ma`, `me`): their
//! lines parsed as 1.6.18's `proto_text.c` parses them, with its checks in
//! its order and its error texts, and their replies' shapes.
//!
//! A flag is one token: its first byte names it, the rest is its argument
//! (`T30`, `Oopaque`). Return flags are written in the order the request gave
//! them. `b` means the key is base64; the request carries it decoded.

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};

use super::number::{strtoflags, strtol_i32, strtoull};

/// memcached's `MFLAG_MAX_OPT_LENGTH`: tokens, with the command and the
/// tokenizer's end marker, above which a line has too many flags.
const MAX_TOKENS: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`.
const MAX_OPAQUE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCommand {
    Get,
    Set,
    Delete,
    Arith,
    Debug,
}

/// A parsed meta request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub command: MetaCommand,
    /// Decoded when `binary`.
    pub key: Bytes,
    pub binary: bool,
    /// The flag tokens as sent, in order (for the return flags).
    pub flags: Vec<Bytes>,
    /// `q`: the nominal reply (`EN` for mg, `HD` for ms/md/ma) is not sent.
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `T`: a new TTL (memcached exptime rules).
    pub ttl: Option<i32>,
    /// `N`: create on miss with this TTL.
    pub vivify: Option<i32>,
    /// `R`: recache when the TTL is below this.
    pub recache: Option<i32>,
    /// `I`: invalidate (mark stale) instead of removing/refusing.
    pub invalidate: bool,
    /// `M`: the mode switch of ms and ma.
    pub mode: Option<u8>,
    /// `F`: client flags to store.
    pub client_flags: u32,
    /// `C`: compare this CAS id.
    pub cas: Option<u64>,
    /// `D`: ma's delta (1 when absent).
    pub delta: u64,
    /// `J`: ma's initial value for `N`.
    pub initial: u64,
    /// ms's data block.
    pub data: Option<Bytes>,
}

/// Why a meta line is refused, as memcached words it: `Error` is bare
/// `ERROR`, the rest is written as it is (with `\r\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaError {
    Error,
    Line(&'static str),
}

pub fn meta_command(word: &[u8]) -> Option<MetaCommand> {
    Some(match word {
        b"mg" => MetaCommand::Get,
        b"ms" => MetaCommand::Set,
        b"md" => MetaCommand::Delete,
        b"ma" => MetaCommand::Arith,
        b"me" => MetaCommand::Debug,
        _ => return None,
    })
}

const BAD_FORMAT: MetaError = MetaError::Line("CLIENT_ERROR bad command line format");

/// Parses a meta line's tokens (`tokens[0]` the command). For `ms`, the
/// returned length is the data block's (without `\r\n`), to be read next;
/// an error after that length is known comes with it too, for the block is
/// then swallowed.
pub fn parse_meta(
    command: MetaCommand,
    tokens: &[&[u8]],
    max_key: usize,
) -> Result<(Meta, Option<usize>), (MetaError, Option<usize>)> {
    // memcached's ntokens counts the end marker.
    let ntokens = tokens.len() + 1;
    if command == MetaCommand::Debug {
        if ntokens < 3 || tokens[1].len() > max_key {
            return Err((BAD_FORMAT, None));
        }
    } else if ntokens < 3 {
        return Err((MetaError::Error, None));
    }
    if tokens[1].len() > max_key {
        return Err((BAD_FORMAT, None));
    }
    let too_many = match command {
        MetaCommand::Get => "CLIENT_ERROR options flags are too long",
        _ => "CLIENT_ERROR options flags too long",
    };
    let mut first_flag = 2;
    let mut length = None;
    match command {
        MetaCommand::Set => {
            if ntokens == 3 {
                return Err((BAD_FORMAT, None));
            }
            if ntokens > MAX_TOKENS {
                return Err((MetaError::Line(too_many), None));
            }
            let vlen = strtol_i32(tokens[2])
                .filter(|n| (0..=i32::MAX - 2).contains(n))
                .ok_or((BAD_FORMAT, None))?;
            length = Some(vlen as usize);
            first_flag = 3;
        }
        MetaCommand::Debug => {
            let binary = tokens.len() >= 3 && tokens[2] == b"b";
            let key = decode_key(tokens[1], binary).ok_or((BAD_FORMAT, None))?;
            return Ok((meta(command, key, binary, Vec::new()), None));
        }
        _ if ntokens > MAX_TOKENS => return Err((MetaError::Line(too_many), None)),
        _ => {}
    }
    let refuse = |why: &'static str| {
        // md and ma word every flag problem one way.
        let why = match command {
            MetaCommand::Delete | MetaCommand::Arith => "CLIENT_ERROR invalid or duplicate flag",
            _ => why,
        };
        Err((MetaError::Line(why), length))
    };
    let flags: Vec<Bytes> = tokens[first_flag..]
        .iter()
        .map(|t| Bytes::copy_from_slice(t))
        .collect();
    let mut request = meta(command, Bytes::new(), false, flags.clone());
    let mut seen = [false; 128];
    let mut error: Option<&'static str> = None;
    for token in &flags {
        let name = token[0];
        if name >= 127 || seen[name as usize] {
            return refuse("CLIENT_ERROR duplicate flag");
        }
        seen[name as usize] = true;
        let arg = &token[1..];
        let number = "CLIENT_ERROR bad token in command line format";
        match name {
            b'b' => request.binary = true,
            b'N' => match strtol_i32(arg) {
                Some(ttl) => request.vivify = Some(ttl),
                None => error = Some(number),
            },
            b'T' => match strtol_i32(arg) {
                Some(ttl) => request.ttl = Some(ttl),
                None => error = Some(number),
            },
            b'R' => match strtol_i32(arg) {
                Some(ttl) => request.recache = Some(ttl),
                None => error = Some(number),
            },
            b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' | b'u' => {}
            b'v' => request.value = true,
            b'q' => request.quiet = true,
            b'F' => match strtoflags(arg) {
                Some(flags) => request.client_flags = flags,
                None => error = Some(error.unwrap_or("CLIENT_ERROR bad command line format")),
            },
            b'C' => match strtoull(arg) {
                Some(cas) => request.cas = Some(cas),
                None => error = Some(number),
            },
            b'M' if token.len() != 2 => error = Some("CLIENT_ERROR incorrect length for M token"),
            b'M' => request.mode = Some(token[1]),
            b'J' => match strtoull(arg) {
                Some(initial) => request.initial = initial,
                None => error = Some("CLIENT_ERROR invalid numeric initial value"),
            },
            b'D' => match strtoull(arg) {
                Some(delta) => request.delta = delta,
                None => error = Some("CLIENT_ERROR invalid numeric delta value"),
            },
            b'I' => request.invalidate = true,
            _ => return refuse("CLIENT_ERROR invalid flag"),
        }
    }
    match decode_key(tokens[1], request.binary) {
        Some(key) => request.key = key,
        None => error = Some(error.unwrap_or("CLIENT_ERROR error decoding key")),
    }
    if let Some(why) = error {
        return refuse(why);
    }
    if request
        .flags
        .iter()
        .any(|f| f[0] == b'O' && f.len() > MAX_OPAQUE)
    {
        return Err((
            MetaError::Line("CLIENT_ERROR opaque token too long"),
            length,
        ));
    }
    let valid_mode = match (command, request.mode) {
        (_, None) => true,
        (MetaCommand::Set, Some(mode)) => b"EAPRS".contains(&mode),
        (MetaCommand::Arith, Some(mode)) => b"I+D-".contains(&mode),
        _ => true,
    };
    if !valid_mode {
        let why = match command {
            MetaCommand::Set => "CLIENT_ERROR invalid mode for ms M token",
            _ => "CLIENT_ERROR invalid mode for ma M token",
        };
        return Err((MetaError::Line(why), length));
    }
    Ok((request, length))
}

fn meta(command: MetaCommand, key: Bytes, binary: bool, flags: Vec<Bytes>) -> Meta {
    Meta {
        command,
        key,
        binary,
        flags,
        quiet: false,
        value: false,
        ttl: None,
        vivify: None,
        recache: None,
        invalidate: false,
        mode: None,
        client_flags: 0,
        cas: None,
        delta: 1,
        initial: 0,
        data: None,
    }
}

fn decode_key(token: &[u8], binary: bool) -> Option<Bytes> {
    if !binary {
        return Some(Bytes::copy_from_slice(token));
    }
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .filter(|key| !key.is_empty())
        .map(Bytes::from)
}

/// What an item shows in a meta reply's return flags.
#[derive(Debug, Clone, Default)]
pub struct MetaItem {
    pub value: Bytes,
    pub client_flags: u32,
    pub cas: u64,
    /// Seconds left; -1 for none.
    pub ttl: i64,
}

impl Meta {
    /// Writes `code` (`VA <len>` when `value` is given) and the return flags
    /// the request asked for, in its order, then the value block.
    pub fn write_reply(
        &self,
        code: &str,
        item: Option<&MetaItem>,
        value: Option<&[u8]>,
        out: &mut BytesMut,
    ) {
        match value {
            Some(value) => {
                out.put_slice(b"VA ");
                out.put_slice(value.len().to_string().as_bytes());
            }
            None => out.put_slice(code.as_bytes()),
        }
        for flag in &self.flags {
            match (flag[0], item) {
                (b'O', _) => {
                    out.put_u8(b' ');
                    out.put_slice(flag);
                }
                (b'k', _) => self.write_key(out, self.key_shown_binary(item.is_some())),
                (b's', Some(item)) if self.command == MetaCommand::Get => {
                    put_flag(out, b's', item.value.len() as i64)
                }
                (b't', Some(item)) if self.command != MetaCommand::Set => {
                    put_flag(out, b't', item.ttl)
                }
                (b'c', Some(item)) if self.command != MetaCommand::Delete => {
                    put_flag(out, b'c', item.cas as i64)
                }
                (b'f', Some(item)) if self.command == MetaCommand::Get => {
                    put_flag(out, b'f', item.client_flags as i64)
                }
                // Keyway keeps no access times or fetched bits: documented
                // constants (docs/protocol-compatibility.md).
                (b'l' | b'h', Some(_)) if self.command == MetaCommand::Get => {
                    put_flag(out, flag[0], 0)
                }
                _ => {}
            }
        }
        out.put_slice(b"\r\n");
        if let Some(value) = value {
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
    }

    /// Whether `k` shows the key in base64. memcached shows a found item's
    /// key as the item was stored (binary only if set with `b`); Keyway
    /// keeps no such bit, so a found key is shown in base64 only when it
    /// could not be sent as text.
    pub fn key_shown_binary(&self, found: bool) -> bool {
        match self.command {
            MetaCommand::Get | MetaCommand::Debug if found => {
                self.binary && !super::is_text_key(&self.key)
            }
            _ => self.binary,
        }
    }

    /// ` k<key>`, or ` k<base64> b`.
    pub fn write_key(&self, out: &mut BytesMut, binary: bool) {
        out.put_slice(b" k");
        if binary {
            out.put_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(&self.key)
                    .as_bytes(),
            );
            out.put_slice(b" b");
        } else {
            out.put_slice(&self.key);
        }
    }
}

fn put_flag(out: &mut BytesMut, name: u8, value: i64) {
    out.put_u8(b' ');
    out.put_u8(name);
    out.put_slice(value.to_string().as_bytes());
}
