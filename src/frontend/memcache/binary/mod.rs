//! memcached's binary protocol on the memcached listener: a connection whose
//! first byte is 0x80 speaks it for its whole life, as on memcached (pylibmc
//! with `binary: True`, libmemcached's `--BINARY-PROTOCOL`). Every request
//! runs as router operations on every route (a memcached pool is reached
//! through its backend's operations, never forwarded as it came), with
//! memcached 1.6's statuses and the quiet variants' silences. With
//! `auth.memcache` set, a client authenticates by SASL PLAIN against
//! `[[auth.users]]`; until then only the SASL requests, VERSION and QUIT
//! answer, and a body is bounded by what SASL needs.

mod operations;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{
    encode_response, encode_status, BinaryDecoder, BinaryError, BinaryRequest, BinaryResponse,
    Opcode, Status,
};

use self::operations::{run, Outcome};
use super::{MemcacheSession, DB, VERSION};
use crate::session::{Flow, Shared};

/// The protocol a connection speaks, decided by its first byte.
#[derive(Debug)]
pub(super) enum Protocol {
    Undecided,
    Text,
    Binary(BinaryDecoder),
}

impl PartialEq for Protocol {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl MemcacheSession {
    /// A binary connection's requests, each answered in turn (quiet ones
    /// only when they fail), within the same pipeline and output bounds as
    /// text.
    pub(super) async fn process_binary(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> Flow {
        if self.user_was_removed() {
            return Flow::Close;
        }
        let mut answered = 0;
        loop {
            if let Some(flow) = self.turn_spent(answered, input, output) {
                return flow;
            }
            let max_body = self.max_body();
            let Protocol::Binary(decoder) = &mut self.protocol else {
                return Flow::Close;
            };
            decoder.set_max_body(max_body);
            let request = match decoder.decode(input) {
                Ok(None) => return Flow::Continue,
                Ok(Some(request)) => request,
                Err(error) => {
                    match refuse(&self.shared, error, self.auth.is_none(), output).await {
                        Flow::Continue => continue,
                        flow => return flow,
                    }
                }
            };
            answered += 1;
            self.shared.stats.commands.add(1);
            let sasl = matches!(
                request.opcode,
                Some(Opcode::SaslListMechs | Opcode::SaslAuth | Opcode::SaslStep)
            );
            if sasl && self.shared.config.auth.memcache_required() {
                self.sasl(&request, output);
                continue;
            }
            let authenticated = self.auth.is_none();
            if answer(&self.shared, &request, authenticated, output).await == Flow::Close {
                return Flow::Close;
            }
        }
    }

    /// The longest request body this client may send now: until it has
    /// authenticated, what SASL PLAIN needs (the ASCII authentication's
    /// bound), so that a client without credentials never makes Keyway
    /// hold an item-sized body; then extras (at most 20 bytes), a key and a
    /// value of the item size.
    fn max_body(&self) -> usize {
        if self.auth.is_some() {
            return keyway_protocol::memcache::MAX_AUTH_TOKEN;
        }
        let item_size = self.shared.config.limits.item_size.as_usize();
        item_size + 20 + keyway_protocol::memcache::MAX_KEY
    }

    /// SASL on a listener with `auth.memcache`: PLAIN, in one step.
    fn sasl(&mut self, request: &BinaryRequest, out: &mut BytesMut) {
        let (op, opaque) = (request.opcode_byte, request.opaque);
        let reply = |value: &[u8], out: &mut BytesMut| {
            let response = BinaryResponse {
                value,
                ..Default::default()
            };
            encode_response(op, opaque, &response, out);
        };
        match request.opcode {
            Some(Opcode::SaslListMechs) => reply(b"PLAIN", out),
            Some(Opcode::SaslAuth) => match sasl_plain(&self.shared, request) {
                Some(user) => {
                    self.auth = None;
                    self.user = Some((user, Arc::as_ptr(&self.shared) as usize));
                    reply(b"Authenticated", out);
                }
                None => encode_status(op, opaque, Status::AuthError, out),
            },
            _ => encode_status(op, opaque, Status::AuthError, out),
        }
    }
}

/// Answers one request. `authenticated`: false while `auth.memcache`
/// still waits for this client's SASL.
pub(super) async fn answer(
    shared: &Arc<Shared>,
    request: &BinaryRequest,
    authenticated: bool,
    out: &mut BytesMut,
) -> Flow {
    let (op, quiet) = (
        request.opcode_byte,
        request.opcode.is_some_and(Opcode::is_quiet),
    );
    let outcome = match request.opcode {
        None => Outcome::Reply(Status::UnknownCommand),
        Some(Opcode::Version) => {
            let response = BinaryResponse {
                value: VERSION.as_bytes(),
                ..Default::default()
            };
            encode_response(op, request.opaque, &response, out);
            Outcome::Written
        }
        // Quitting needs no credentials (nor does it on the text side).
        Some(opcode @ (Opcode::Quit | Opcode::QuitQ)) => run(shared, opcode, request, out).await,
        Some(_) if !authenticated => Outcome::Reply(Status::AuthError),
        Some(opcode) => run(shared, opcode, request, out).await,
    };
    match outcome {
        Outcome::Reply(Status::Ok) if quiet => {}
        Outcome::Reply(Status::Ok) => {
            encode_response(op, request.opaque, &BinaryResponse::default(), out)
        }
        Outcome::Reply(status) => encode_status(op, request.opaque, status, out),
        Outcome::Written | Outcome::Silent => {}
        Outcome::Close => return Flow::Close,
    }
    Flow::Continue
}

/// SASL PLAIN (`authzid NUL user NUL password`) against `[[auth.users]]`;
/// the user it names, when the password is right.
pub(super) fn sasl_plain(shared: &Shared, request: &BinaryRequest) -> Option<Bytes> {
    if request.key.as_ref() != b"PLAIN" {
        return None;
    }
    let mut parts = request.value.split(|&b| b == 0);
    let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    shared.stats.auth_attempts.add(1);
    if parts.next().is_none() && shared.users.check(user, password) {
        return Some(Bytes::copy_from_slice(user));
    }
    shared.stats.auth_failures.add(1);
    None
}

/// A request that could not be framed: a body over the limit is refused
/// (an authenticated client's set also drops the key's old value, as
/// memcached does, so no reader sees a value the client meant to replace;
/// a client that has not authenticated changes nothing); anything else
/// closes.
pub(super) async fn refuse(
    shared: &Shared,
    error: BinaryError,
    authenticated: bool,
    out: &mut BytesMut,
) -> Flow {
    match error {
        BinaryError::TooLarge {
            opcode_byte,
            opaque,
            key,
        } => {
            let set = matches!(
                Opcode::from_byte(opcode_byte),
                Some(Opcode::Set | Opcode::SetQ)
            );
            if set && authenticated && !key.is_empty() {
                let _ = shared.memcache_router.delete(DB, &[key]).await;
            }
            encode_status(opcode_byte, opaque, Status::TooLarge, out);
            Flow::Continue
        }
        BinaryError::BadMagic(byte) => {
            tracing::debug!(
                byte,
                "binary protocol: a request without the 0x80 magic; closing"
            );
            Flow::Close
        }
    }
}
