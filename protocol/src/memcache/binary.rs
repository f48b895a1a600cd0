//! memcached's binary protocol: framing requests and encoding responses.
//!
//! The reference is memcached 1.6's `proto_bin.c` and `protocol_binary.h`: a
//! 24-byte header (magic 0x80 for requests, 0x81 for responses), then the
//! extras, the key and the value, their lengths in the header. A connection
//! speaks it when its first byte is 0x80, as memcached decides. What each
//! opcode means is the frontend's; this module only frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The first byte of every binary request.
pub const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
const HEADER: usize = 24;

/// The request opcodes memcached 1.6 knows. The quiet twins (`GetQ`,
/// `SetQ`...) answer only a miss or a failure (a quiet get: only a hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Get = 0x00,
    Set = 0x01,
    Add = 0x02,
    Replace = 0x03,
    Delete = 0x04,
    Increment = 0x05,
    Decrement = 0x06,
    Quit = 0x07,
    Flush = 0x08,
    GetQ = 0x09,
    Noop = 0x0a,
    Version = 0x0b,
    GetK = 0x0c,
    GetKQ = 0x0d,
    Append = 0x0e,
    Prepend = 0x0f,
    Stat = 0x10,
    SetQ = 0x11,
    AddQ = 0x12,
    ReplaceQ = 0x13,
    DeleteQ = 0x14,
    IncrementQ = 0x15,
    DecrementQ = 0x16,
    QuitQ = 0x17,
    FlushQ = 0x18,
    AppendQ = 0x19,
    PrependQ = 0x1a,
    Verbosity = 0x1b,
    Touch = 0x1c,
    Gat = 0x1d,
    GatQ = 0x1e,
    SaslListMechs = 0x20,
    SaslAuth = 0x21,
    SaslStep = 0x22,
    GatK = 0x23,
    GatKQ = 0x24,
}

impl Opcode {
    pub fn from_byte(byte: u8) -> Option<Self> {
        use Opcode::*;
        const ALL: [Opcode; 36] = [
            Get,
            Set,
            Add,
            Replace,
            Delete,
            Increment,
            Decrement,
            Quit,
            Flush,
            GetQ,
            Noop,
            Version,
            GetK,
            GetKQ,
            Append,
            Prepend,
            Stat,
            SetQ,
            AddQ,
            ReplaceQ,
            DeleteQ,
            IncrementQ,
            DecrementQ,
            QuitQ,
            FlushQ,
            AppendQ,
            PrependQ,
            Verbosity,
            Touch,
            Gat,
            GatQ,
            SaslListMechs,
            SaslAuth,
            SaslStep,
            GatK,
            GatKQ,
        ];
        ALL.into_iter().find(|op| *op as u8 == byte)
    }

    /// Whether it answers only what the client cannot take for granted.
    pub fn is_quiet(self) -> bool {
        use Opcode::*;
        matches!(
            self,
            GetQ | GetKQ
                | SetQ
                | AddQ
                | ReplaceQ
                | DeleteQ
                | IncrementQ
                | DecrementQ
                | QuitQ
                | FlushQ
                | AppendQ
                | PrependQ
                | GatQ
                | GatKQ
        )
    }

    /// Whether the response carries the key (the `K` gets).
    pub fn returns_key(self) -> bool {
        matches!(
            self,
            Opcode::GetK | Opcode::GetKQ | Opcode::GatK | Opcode::GatKQ
        )
    }
}

/// Response status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    Ok = 0x00,
    KeyNotFound = 0x01,
    KeyExists = 0x02,
    TooLarge = 0x03,
    InvalidArguments = 0x04,
    NotStored = 0x05,
    NonNumeric = 0x06,
    AuthError = 0x20,
    AuthContinue = 0x21,
    UnknownCommand = 0x81,
    OutOfMemory = 0x82,
    TemporaryFailure = 0x86,
}

impl Status {
    /// The body memcached sends with an error status.
    pub fn message(self) -> &'static str {
        match self {
            Status::Ok => "",
            Status::KeyNotFound => "Not found",
            Status::KeyExists => "Data exists for key.",
            Status::TooLarge => "Too large.",
            Status::InvalidArguments => "Invalid arguments",
            Status::NotStored => "Not stored.",
            Status::NonNumeric => "Non-numeric server-side value for incr or decr",
            Status::AuthError => "Auth failure.",
            Status::AuthContinue => "Auth continue",
            Status::UnknownCommand => "Unknown command",
            Status::OutOfMemory => "Out of memory",
            Status::TemporaryFailure => "Temporary failure",
        }
    }
}

/// One framed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRequest {
    /// `None`: an opcode memcached does not know (answered UnknownCommand).
    pub opcode: Option<Opcode>,
    /// The opcode byte as sent, echoed in the response.
    pub opcode_byte: u8,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Bytes,
    pub key: Bytes,
    pub value: Bytes,
}

/// What the decoder found instead of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// A header whose first byte is not 0x80: the stream cannot be framed
    /// any more; memcached closes the connection.
    BadMagic(u8),
    /// A body longer than the connection may send (`max_body`): its value's
    /// bytes are skipped as they come and the request is answered
    /// `TooLarge` (a set also drops the key's old value, as memcached does).
    TooLarge {
        opcode_byte: u8,
        opaque: u32,
        key: Bytes,
    },
}

/// Frames binary requests from a connection's input.
#[derive(Debug)]
pub struct BinaryDecoder {
    max_body: usize,
    /// Bytes of a refused body still to be skipped.
    skipping: usize,
}

impl BinaryDecoder {
    /// `max_body`: the longest body (extras, key and value) accepted; the
    /// item size limit plus room for a key and extras.
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body,
            skipping: 0,
        }
    }

    /// Changes the body limit (a client that authenticates may send more).
    pub fn set_max_body(&mut self, max_body: usize) {
        self.max_body = max_body;
    }

    /// The next whole request in `buf`, if it has arrived (its bytes are
    /// taken from `buf`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BinaryRequest>, BinaryError> {
        if self.skipping > 0 {
            let skipped = self.skipping.min(buf.len());
            buf.advance(skipped);
            self.skipping -= skipped;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        if buf.len() < HEADER {
            return Ok(None);
        }
        if buf[0] != REQUEST_MAGIC {
            return Err(BinaryError::BadMagic(buf[0]));
        }
        let opcode_byte = buf[1];
        let key_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let extras_len = usize::from(buf[4]);
        let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
        let opaque = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
        if body > self.max_body {
            return self.refuse_body(buf, (extras_len, key_len, body), opcode_byte, opaque);
        }
        if buf.len() < HEADER + body {
            buf.reserve(HEADER + body - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(HEADER + body).freeze();
        let cas = u64::from_be_bytes(frame[16..24].try_into().expect("8 bytes"));
        frame.advance(HEADER);
        // Lengths that do not fit the body: the whole body is the value's
        // problem, answered InvalidArguments by the frontend (no key).
        let (extras, key) = if extras_len + key_len <= body {
            (frame.split_to(extras_len), frame.split_to(key_len))
        } else {
            (Bytes::new(), Bytes::new())
        };
        Ok(Some(BinaryRequest {
            opcode: Opcode::from_byte(opcode_byte),
            opcode_byte,
            opaque,
            cas,
            extras,
            key,
            value: frame,
        }))
    }
}

impl BinaryDecoder {
    /// A body over the limit: the key is read when it fits the limit
    /// itself (so that a set can drop the old value); the rest is skipped
    /// as it comes, never held. A key longer than the limit is skipped too:
    /// the limit is what a client may make Keyway hold.
    fn refuse_body(
        &mut self,
        buf: &mut BytesMut,
        (extras_len, key_len, body): (usize, usize, usize),
        opcode_byte: u8,
        opaque: u32,
    ) -> Result<Option<BinaryRequest>, BinaryError> {
        let key_len = if extras_len + key_len <= self.max_body.min(body) {
            key_len
        } else {
            0
        };
        if buf.len() < HEADER + extras_len + key_len {
            return Ok(None);
        }
        buf.advance(HEADER + extras_len);
        let key = buf.split_to(key_len).freeze();
        self.skipping = body.saturating_sub(extras_len + key_len);
        Err(BinaryError::TooLarge {
            opcode_byte,
            opaque,
            key,
        })
    }
}

/// One response, as memcached writes it.
#[derive(Debug, Default)]
pub struct BinaryResponse<'a> {
    pub status: u16,
    pub cas: u64,
    pub extras: &'a [u8],
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Encodes a response to the request with `opcode_byte` and `opaque`.
pub fn encode_response(
    opcode_byte: u8,
    opaque: u32,
    response: &BinaryResponse<'_>,
    out: &mut BytesMut,
) {
    let body = response.extras.len() + response.key.len() + response.value.len();
    out.reserve(HEADER + body);
    out.put_u8(RESPONSE_MAGIC);
    out.put_u8(opcode_byte);
    out.put_u16(response.key.len() as u16);
    out.put_u8(response.extras.len() as u8);
    out.put_u8(0);
    out.put_u16(response.status);
    out.put_u32(body as u32);
    out.put_u32(opaque);
    out.put_u64(response.cas);
    out.put_slice(response.extras);
    out.put_slice(response.key);
    out.put_slice(response.value);
}

/// An error status with memcached's message as the body.
pub fn encode_status(opcode_byte: u8, opaque: u32, status: Status, out: &mut BytesMut) {
    let response = BinaryResponse {
        status: status as u16,
        value: status.message().as_bytes(),
        ..Default::default()
    };
    encode_response(opcode_byte, opaque, &response, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(opcode: u8, extras: &[u8], key: &[u8], value: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u8(0x80);
        buf.put_u8(opcode);
        buf.put_u16(key.len() as u16);
        buf.put_u8(extras.len() as u8);
        buf.put_u8(0);
        buf.put_u16(0);
        buf.put_u32((extras.len() + key.len() + value.len()) as u32);
        buf.put_u32(0xdead_beef);
        buf.put_u64(7);
        buf.put_slice(extras);
        buf.put_slice(key);
        buf.put_slice(value);
        buf
    }

    #[test]
    fn a_request_is_framed_by_its_header_even_when_it_arrives_in_pieces() {
        let whole = request(0x01, &[0, 0, 0, 5, 0, 0, 0, 0], b"key", b"value");
        let mut decoder = BinaryDecoder::new(1024);
        let mut buf = BytesMut::from(&whole[..10]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&whole[10..30]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&whole[30..]);
        let got = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(got.opcode, Some(Opcode::Set));
        assert_eq!((got.opaque, got.cas), (0xdead_beef, 7));
        assert_eq!(&got.extras[..], &[0, 0, 0, 5, 0, 0, 0, 0]);
        assert_eq!((&got.key[..], &got.value[..]), (&b"key"[..], &b"value"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_body_over_the_limit_is_refused_and_skipped_then_the_next_request_is_read() {
        let mut decoder = BinaryDecoder::new(16);
        let mut buf = request(0x01, &[0; 8], b"k", &[b'x'; 100]);
        buf.extend_from_slice(&request(0x0a, &[], &[], &[]));
        assert_eq!(
            decoder.decode(&mut buf),
            Err(BinaryError::TooLarge {
                opcode_byte: 0x01,
                opaque: 0xdead_beef,
                key: Bytes::from_static(b"k"),
            })
        );
        let noop = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(noop.opcode, Some(Opcode::Noop));
    }

    #[test]
    fn a_key_longer_than_the_limit_is_skipped_unread_with_the_body() {
        let mut decoder = BinaryDecoder::new(16);
        let whole = request(0x01, &[0; 8], &[b'k'; 1000], &[b'x'; 100]);
        // Only the header and extras have arrived: the refusal does not
        // wait for the key.
        let mut buf = BytesMut::from(&whole[..HEADER + 8]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(BinaryError::TooLarge {
                opcode_byte: 0x01,
                opaque: 0xdead_beef,
                key: Bytes::new(),
            })
        );
        buf.extend_from_slice(&whole[HEADER + 8..]);
        buf.extend_from_slice(&request(0x0a, &[], &[], &[]));
        let noop = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(noop.opcode, Some(Opcode::Noop));
    }

    #[test]
    fn a_text_line_on_a_binary_connection_cannot_be_framed() {
        let mut decoder = BinaryDecoder::new(8);
        let mut buf = BytesMut::from(&b"get a b c d e f g h i j k l m\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Err(BinaryError::BadMagic(b'g')));
    }

    #[test]
    fn responses_carry_memcacheds_header() {
        let mut out = BytesMut::new();
        encode_status(0x00, 9, Status::KeyNotFound, &mut out);
        assert_eq!(out[0], 0x81);
        assert_eq!(u16::from_be_bytes([out[6], out[7]]), 1);
        assert_eq!(u32::from_be_bytes([out[8], out[9], out[10], out[11]]), 9);
        assert_eq!(u32::from_be_bytes([out[12], out[13], out[14], out[15]]), 9);
        assert_eq!(&out[24..], b"Not found");
    }
}
