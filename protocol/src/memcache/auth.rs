//! memcached's ASCII authentication (`memcached -Y <file>`), as 1.6.18's
//! `try_read_command_asciiauth` frames it. Until a connection authenticates,
//! every line is read as a would-be `set <key> <flags> <exptime> <bytes>`
//! whose data block is `<user> <password>`; anything else is refused with
//! `CLIENT_ERROR unauthenticated`, whatever the command. The key, flags,
//! exptime and `noreply` are ignored: the reply always comes.
//!
//! One deliberate difference: memcached 1.6.18 then waits for as many bytes
//! as the line declares (a client can make it buffer gigabytes before it
//! knows who it is); newer memcached refuses a token over 16 KiB with
//! `CLIENT_ERROR auth token too long`, and so does this decoder.

use bytes::{Bytes, BytesMut};

/// The longest `<user> <password>` block accepted (memcached's `MAX_AUTH_REQ_LEN`).
pub const MAX_AUTH_TOKEN: usize = 16384;

/// Bytes buffered without a newline before the connection is closed
/// (memcached closes "junk data" past 2 KiB).
const MAX_AUTH_LINE: usize = 2048;

/// One framed step of an unauthenticated connection.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFrame {
    /// Not a `set` with a byte count: `CLIENT_ERROR unauthenticated`.
    Refused,
    /// The byte count is over [`MAX_AUTH_TOKEN`].
    TooLong,
    /// The block did not end with `\r\n`.
    BadTermination,
    /// The block held no space-separated user and password.
    BadFormat,
    /// Check these; `STORED` or `CLIENT_ERROR authentication failure`.
    Credentials { user: Bytes, password: Bytes },
    /// Over 2 KiB without a newline: memcached closes the connection.
    Close,
}

impl AuthFrame {
    /// The reply line for the frames answered without checking a password.
    pub fn reply(&self) -> Option<&'static [u8]> {
        Some(match self {
            AuthFrame::Refused => b"CLIENT_ERROR unauthenticated\r\n",
            AuthFrame::TooLong => b"CLIENT_ERROR auth token too long\r\n",
            AuthFrame::BadTermination => b"CLIENT_ERROR bad command line termination\r\n",
            AuthFrame::BadFormat => b"CLIENT_ERROR bad authentication token format\r\n",
            AuthFrame::Credentials { .. } | AuthFrame::Close => return None,
        })
    }
}

pub const AUTH_STORED: &[u8] = b"STORED\r\n";
pub const AUTH_FAILED: &[u8] = b"CLIENT_ERROR authentication failure\r\n";

/// Frames an unauthenticated connection's input; keeps the declared block
/// length between calls when the block has not all arrived.
#[derive(Debug, Default)]
pub struct AuthDecoder {
    /// The block length (with its `\r\n`) the last `set` line declared.
    pending: Option<usize>,
}

impl AuthDecoder {
    /// The next frame, or `None` until more input arrives.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<AuthFrame> {
        let block = match self.pending {
            Some(block) => block,
            None => {
                // memcached waits for two bytes before looking at a line.
                if buf.len() < 2 {
                    return None;
                }
                let Some(newline) = memchr::memchr(b'\n', buf) else {
                    return (buf.len() > MAX_AUTH_LINE).then_some(AuthFrame::Close);
                };
                let line = buf.split_to(newline + 1);
                match declared_length(&line[..newline]) {
                    Err(frame) => return Some(frame),
                    Ok(length) => {
                        let block = length + 2;
                        self.pending = Some(block);
                        block
                    }
                }
            }
        };
        if buf.len() < block {
            return None;
        }
        self.pending = None;
        let data = buf.split_to(block).freeze();
        if &data[block - 2..] != b"\r\n" {
            return Some(AuthFrame::BadTermination);
        }
        // memcached tokenizes the block on spaces: runs of spaces separate,
        // the first two tokens are user and password, the rest is ignored.
        let mut tokens = data[..block - 2]
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty());
        match (tokens.next(), tokens.next()) {
            (Some(user), Some(password)) => Some(AuthFrame::Credentials {
                user: data.slice_ref(user),
                password: data.slice_ref(password),
            }),
            _ => Some(AuthFrame::BadFormat),
        }
    }
}

/// The `<bytes>` of a `set <key> <flags> <exptime> <bytes> ...` line.
fn declared_length(line: &[u8]) -> Result<usize, AuthFrame> {
    // Split on spaces only, as memcached's tokenizer: a `\r` stays on the
    // last token, and its strtoul stops there.
    let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let command = tokens.next();
    let count = tokens.nth(3);
    let (Some(b"set"), Some(count)) = (command, count) else {
        return Err(AuthFrame::Refused);
    };
    let digits = count.strip_suffix(b"\r").unwrap_or(count);
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(AuthFrame::Refused);
    }
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
    {
        Some(length) if (length as usize) <= MAX_AUTH_TOKEN => Ok(length as usize),
        Some(_) => Err(AuthFrame::TooLong),
        None => Err(AuthFrame::Refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<AuthFrame> {
        let mut decoder = AuthDecoder::default();
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf) {
            // The connection ends at Close; nothing after it is read.
            let close = frame == AuthFrame::Close;
            frames.push(frame);
            if close {
                break;
            }
        }
        frames
    }

    fn credentials(user: &str, password: &str) -> AuthFrame {
        AuthFrame::Credentials {
            user: Bytes::copy_from_slice(user.as_bytes()),
            password: Bytes::copy_from_slice(password.as_bytes()),
        }
    }

    #[test]
    fn frames_as_memcached_1_6_18() {
        assert_eq!(
            frames(b"set x 0 0 12\r\nalice secret\r\n"),
            [credentials("alice", "secret")]
        );
        assert_eq!(
            frames(b"set x 0 0 13 noreply\r\nalice  secret\r\n"),
            [credentials("alice", "secret")]
        );
        assert_eq!(frames(b"get a\r\nab\r\nset\r\n").len(), 3);
        assert!(frames(b"SET x 0 0 12\r\n")
            .iter()
            .all(|f| *f == AuthFrame::Refused));
        assert_eq!(frames(b"set x 0 0 -1\r\n"), [AuthFrame::Refused]);
        assert_eq!(frames(b"set x 0 0 12abc\r\n"), [AuthFrame::Refused]);
        assert_eq!(frames(b"set x 0 0 5\r\nalice\r\n"), [AuthFrame::BadFormat]);
        assert_eq!(
            frames(b"set x 0 0 12\r\nalice secretXX"),
            [AuthFrame::BadTermination]
        );
        assert_eq!(frames(b"set x 0 0 99999\r\n"), [AuthFrame::TooLong]);
        assert_eq!(frames(&[b'x'; 3000]), [AuthFrame::Close]);
        assert!(frames(b"set x 0 0 12\r\nalice sec").is_empty());
        assert!(frames(b"\n").is_empty());
    }
}
