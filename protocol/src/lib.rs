//! keyway-protocol: sans-IO codecs for the two wire protocols Keyway speaks.
//!
//! Sits at the very edge of the data flow: client bytes are decoded here into
//! requests, and replies are encoded here into bytes. Nothing in this crate does
//! I/O, spawns tasks or knows about backends, so every parser can be fuzzed,
//! property-tested and benchmarked on plain byte buffers.
//!
//! Every decoder follows one contract: `decode(&mut BytesMut)` returns
//! `Ok(None)` when more bytes are needed (and consumes nothing), `Ok(Some(_))`
//! after consuming exactly one request, or a typed error. Limits are set on the
//! codec; exceeding one is an error, never an allocation.
//!
//! Where the parsers use nom and where they do not:
//! - Grammars are nom combinators: the tokens of a memcached command line
//!   (`memcache::request`) and the arguments of an inline RESP command, with
//!   redis's quoting and escapes (`resp::inline`).
//! - Framing is not a grammar and stays hand-written: finding the end of a
//!   line (memchr) and checking it against the line limits before anything
//!   is parsed, so that the verdict never depends on how the bytes were
//!   split; memcached's data blocks and RESP's `*<n>`/`$<len>` bulks, which
//!   are taken by their declared length (values may contain `\r\nEND\r\n`)
//!   with the limits checked on the header before a byte of the body is
//!   awaited.
//! - Which command a memcached line is, is decided from its token count
//!   first, as memcached decides it: a wrong count is `ERROR`, a bad field in
//!   a well-counted line is `CLIENT_ERROR bad command line format`. A grammar
//!   that fails at the first bad token cannot tell the two apart, so that
//!   dispatch is a `match` over the tokens.
//! - Numbers are read the way memcached's `strtoul`/`strtol` calls read them
//!   (`memcache::number`: leading spaces, signs, overflow), which nom's digit
//!   parsers do not reproduce; RESP lengths follow redis's `string2ll`.
#![forbid(unsafe_code)]

pub mod django;
pub mod memcache;
pub mod resp;
