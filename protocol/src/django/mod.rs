//! Django sessions, read without running them: which keys are sessions
//! ([`session_key`]) and who a session belongs to ([`read_owner`]).
//!
//! Sits beside the wire codecs because it is one too: a value codec, sans
//! IO, fuzzed on plain bytes. What writes sessions, and how:
//! - Django's cache session engines store the session dict under
//!   `KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>` (`backends.cache`)
//!   or `...cached_db<key>` (`backends.cached_db`), where `<key>` is 32
//!   characters of `[a-z0-9]` (`get_random_string(32, VALID_KEY_CHARS)`).
//! - pymemcache and pylibmc pickle it (memcached flags 1; pylibmc may zlib
//!   it, flag 8); Django's RedisCache pickles it; django-redis pickles it by
//!   default, or writes JSON or msgpack, raw or compressed with zlib, lzma
//!   (xz) or zstd. The format is told from the bytes, as each library's
//!   reader would have to: every one of those has a distinct first byte.
//! - A signed-in session has `_auth_user_id` at the top level (Django's
//!   `SESSION_KEY`: the user's primary key as text; for Horizon, the
//!   Keystone user id).

pub mod pickle;

use std::io::Read;

/// Django's `SESSION_KEY`: the signed-in user's id.
pub const OWNER_FIELD: &str = "_auth_user_id";
/// Largest decompressed value read; a larger one is unreadable, not a
/// reason to allocate (a compressed value can expand without bound).
pub const MAX_DECOMPRESSED: u64 = 8 << 20;
/// What every session key holds before its engine's name.
pub const MARKER: &[u8] = b"django.contrib.sessions.";
/// Length of a Django session key.
const KEY_CHARS: usize = 32;

/// Which Django session engine wrote a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `django.contrib.sessions.backends.cache`
    Cache,
    /// `django.contrib.sessions.backends.cached_db` (the database holds
    /// the session too, out of Keyway's reach).
    CachedDb,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Cache => "cache",
            Engine::CachedDb => "cached_db",
        }
    }
}

/// A cache key that is a Django session's, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey<'a> {
    /// Django's `KEY_PREFIX` (often empty).
    pub prefix: &'a [u8],
    /// Django's cache `VERSION`.
    pub version: i64,
    pub engine: Engine,
    /// The session key itself: the cookie's value, a credential.
    pub session: &'a [u8],
}

/// `key` taken apart if it is a Django session key of either cache engine
/// (`<prefix>:<version>:django.contrib.sessions.(cache|cached_db)<32 chars>`).
pub fn session_key(key: &[u8]) -> Option<SessionKey<'_>> {
    if key.len() < MARKER.len() + "cache".len() + KEY_CHARS + 2 {
        return None;
    }
    let (head, session) = key.split_at(key.len() - KEY_CHARS);
    if !session
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let (head, engine) = if let Some(head) = head.strip_suffix(b"cached_db") {
        (head, Engine::CachedDb)
    } else {
        (head.strip_suffix(b"cache")?, Engine::Cache)
    };
    let head = head.strip_suffix(MARKER)?.strip_suffix(b":")?;
    let colon = memchr::memrchr(b':', head)?;
    let version = std::str::from_utf8(&head[colon + 1..]).ok()?.parse().ok()?;
    Some(SessionKey {
        prefix: &head[..colon],
        version,
        engine,
        session,
    })
}

/// Whether `key` may be a session key: the cheap test for hot paths,
/// before [`session_key`].
pub fn may_be_session_key(key: &[u8]) -> bool {
    key.len() >= MARKER.len() + KEY_CHARS && memchr::memmem::find(key, MARKER).is_some()
}

/// Who a session belongs to, as far as its value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Signed in: `_auth_user_id`.
    User(String),
    /// A session dict without `_auth_user_id`.
    Anonymous,
    /// Not a format this reader knows, or damaged: why.
    Unreadable(String),
}

/// The owner of a session value as a Django cache backend stored it (the
/// memcached `flags` it came with, 0 over RESP). Never runs the value.
pub fn read_owner(value: &[u8], flags: u32) -> Owner {
    match decompressed(value, flags) {
        Ok(Some(plain)) => read_plain(&plain),
        Ok(None) => read_plain(value),
        Err(why) => Owner::Unreadable(why),
    }
}

/// Whether `value` may be a session of `user`: false only when it is
/// certainly not (uncompressed, and the id's bytes appear nowhere in it).
/// Lets a search for one user's sessions skip reading most values.
pub fn may_belong_to(value: &[u8], flags: u32, user: &str) -> bool {
    let compressed = flags & PYLIBMC_ZLIB != 0
        || matches!(
            value,
            [0x78, ..] | [0xfd, b'7', b'z', b'X', b'Z', 0, ..] | [0x28, 0xb5, 0x2f, 0xfd, ..]
        );
    compressed || memchr::memmem::find(value, user.as_bytes()).is_some()
}

/// pylibmc's flag for a zlib-compressed value.
const PYLIBMC_ZLIB: u32 = 8;

/// The value decompressed, if it is compressed (`None` if it is not).
fn decompressed(value: &[u8], flags: u32) -> Result<Option<Vec<u8>>, String> {
    let bounded = |reader: &mut dyn Read, what: &str| -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        reader
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("{what}: {e}"))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(format!("{what}: more than {MAX_DECOMPRESSED} bytes"));
        }
        Ok(Some(out))
    };
    match value {
        // zlib: CMF 0x78 and a header check that is a multiple of 31.
        [0x78, flg, ..] if (0x7800u16 | u16::from(*flg)) % 31 == 0 => {
            bounded(&mut flate2::read::ZlibDecoder::new(value), "zlib")
        }
        _ if flags & PYLIBMC_ZLIB != 0 => {
            Err("pylibmc zlib flag on a value that is not zlib".into())
        }
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            let mut out = Vec::new();
            let mut input = std::io::BufReader::new(value);
            let mut sink = LimitedWriter(&mut out);
            lzma_rs::xz_decompress(&mut input, &mut sink).map_err(|e| format!("xz: {e}"))?;
            Ok(Some(out))
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            let mut decoder =
                ruzstd::decoding::StreamingDecoder::new(value).map_err(|e| format!("zstd: {e}"))?;
            bounded(&mut decoder, "zstd")
        }
        _ => Ok(None),
    }
}

/// A writer that refuses to grow past [`MAX_DECOMPRESSED`].
struct LimitedWriter<'a>(&'a mut Vec<u8>);

impl std::io::Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() as u64 + buf.len() as u64 > MAX_DECOMPRESSED {
            return Err(std::io::Error::other(format!(
                "more than {MAX_DECOMPRESSED} bytes"
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The owner field of a JSON or msgpack session, as serde reads it (every
/// other field skipped without being kept).
#[derive(serde::Deserialize)]
struct Fields {
    #[serde(rename = "_auth_user_id")]
    owner: Option<FieldValue>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FieldValue {
    Text(String),
    Int(i64),
    Other(serde::de::IgnoredAny),
}

fn from_fields(fields: Fields) -> Owner {
    match fields.owner {
        None => Owner::Anonymous,
        Some(FieldValue::Text(id)) => Owner::User(id),
        Some(FieldValue::Int(id)) => Owner::User(id.to_string()),
        Some(FieldValue::Other(_)) => Owner::Unreadable("_auth_user_id is not text".into()),
    }
}

fn read_plain(value: &[u8]) -> Owner {
    match value {
        // pickle protocol 2 to 5: PROTO n.
        [0x80, 2..=5, ..] => read_pickle(value),
        // msgpack map (fixmap, map16, map32).
        [0x81..=0x8f | 0xde | 0xdf, ..] => match rmp_serde::from_slice::<Fields>(value) {
            Ok(fields) => from_fields(fields),
            Err(e) => Owner::Unreadable(format!("msgpack: {e}")),
        },
        [b'{', ..] => match serde_json::from_slice::<Fields>(value) {
            Ok(fields) => from_fields(fields),
            Err(e) => Owner::Unreadable(format!("json: {e}")),
        },
        // pickle protocols 0 and 1 start with the dict itself.
        [b'(' | b'}', ..] => read_pickle(value),
        _ => Owner::Unreadable("not a pickle, JSON or msgpack session".into()),
    }
}

fn read_pickle(value: &[u8]) -> Owner {
    match pickle::top_level_dict(value) {
        Ok(Some(dict)) => dict
            .into_iter()
            .find(|(key, _)| key == OWNER_FIELD)
            .map_or(Owner::Anonymous, |(_, id)| Owner::User(id)),
        Ok(None) => Owner::Unreadable("pickle: not a dict".into()),
        Err(e) => Owner::Unreadable(format!("pickle: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_of_both_engines_under_any_prefix_and_version() {
        let id = "abcdefghijklmnopqrstuvwxyz012345";
        let key = format!(":1:django.contrib.sessions.cache{id}");
        let parsed = session_key(key.as_bytes()).unwrap();
        assert_eq!(parsed.prefix, b"");
        assert_eq!(parsed.version, 1);
        assert_eq!(parsed.engine, Engine::Cache);
        assert_eq!(parsed.session, id.as_bytes());
        let key = format!("a:b:12:django.contrib.sessions.cached_db{id}");
        let parsed = session_key(key.as_bytes()).unwrap();
        assert_eq!(parsed.prefix, b"a:b");
        assert_eq!(parsed.version, 12);
        assert_eq!(parsed.engine, Engine::CachedDb);
        for not in [
            format!(":1:django.contrib.sessions.cache{}", &id[1..]),
            ":1:django.contrib.sessions.cacheABCDEFGHIJKLMNOPQRSTUVWXYZ012345".to_string(),
            format!(":1:django.contrib.sessions.cache{id}:keyway-ended"),
            format!("1:django.contrib.sessions.cache{id}"),
            format!(":x:django.contrib.sessions.cache{id}"),
            format!(":1:django.contrib.sessions.other{id}"),
        ] {
            assert_eq!(session_key(not.as_bytes()), None, "{not}");
        }
        assert!(may_be_session_key(key.as_bytes()));
        assert!(!may_be_session_key(b":1:views.decorators.cache"));
    }

    #[test]
    fn a_value_without_the_id_is_not_the_users() {
        let value = br#"{"_auth_user_id":"alice"}"#;
        assert!(may_belong_to(value, 0, "alice"));
        assert!(!may_belong_to(value, 0, "bob"));
        assert!(may_belong_to(b"\x78\x9c...", 0, "bob"));
        assert!(may_belong_to(b"anything", 8, "bob"));
    }

    #[test]
    fn json_and_msgpack_sessions() {
        assert_eq!(
            read_owner(br#"{"_auth_user_id":"u1","x":[1,{"y":2}]}"#, 0),
            Owner::User("u1".into())
        );
        assert_eq!(read_owner(br#"{"a":1}"#, 0), Owner::Anonymous);
        // msgpack {"_auth_user_id": 5}
        let mut m = vec![0x81, 0xad];
        m.extend_from_slice(b"_auth_user_id");
        m.push(5);
        assert_eq!(read_owner(&m, 0), Owner::User("5".into()));
    }

    #[test]
    fn unknown_formats_and_bombs_are_unreadable() {
        assert!(matches!(read_owner(b"hello", 0), Owner::Unreadable(_)));
        assert!(matches!(read_owner(b"", 0), Owner::Unreadable(_)));
        assert!(matches!(read_owner(b"\x80\x05", 8), Owner::Unreadable(_)));
        // 16 MiB of zeros, zlib-compressed: more than the limit.
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &vec![0u8; 16 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(
            matches!(read_owner(&bomb, 8), Owner::Unreadable(why) if why.contains("more than"))
        );
    }
}
