//! The binary requests themselves: each opcode as router operations, with
//! memcached's statuses and the quiet variants' silences.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{
    encode_response, encode_status, BinaryRequest, BinaryResponse, Opcode, Reply, Status,
    StoreCommand,
};

use super::super::stats::stats_group;
use super::super::{expiry_from_exptime, flush_all, store, DB};
use crate::op::{Arith, ArithOutcome, Expiry, ExpiryUpdate, Item, Store, StoreMode, StoreStatus};
use crate::router::RouteError;
use crate::session::Shared;

/// incr/decr's exptime that means "do not create a missing counter".
const NO_CREATE: u32 = 0xffff_ffff;

/// What one request answers: a response, nothing (a quiet success), or a
/// close after whatever is already written.
pub(super) enum Outcome {
    Reply(Status),
    /// Written by the handler itself (values, stats).
    Written,
    Silent,
    Close,
}

pub(super) async fn run(
    shared: &Arc<Shared>,
    opcode: Opcode,
    request: &BinaryRequest,
    out: &mut BytesMut,
) -> Outcome {
    use Opcode::*;
    let Some(extras) = Extras::of(opcode, request) else {
        // A protocol error: memcached answers it and closes the connection.
        encode_status(
            request.opcode_byte,
            request.opaque,
            Status::InvalidArguments,
            out,
        );
        return Outcome::Close;
    };
    match opcode {
        Get | GetQ | GetK | GetKQ => retrieve(shared, request, None, out).await,
        Gat | GatQ | GatK | GatKQ | Touch => {
            let expiry = expiry_from_exptime(extras.exptime as i32);
            retrieve(shared, request, Some(expiry), out).await
        }
        Set | SetQ | Add | AddQ | Replace | ReplaceQ | Append | AppendQ | Prepend | PrependQ => {
            shared.stats.sets.add(1);
            let status = store_value(shared, opcode, request, &extras).await;
            Outcome::Reply(status)
        }
        Delete | DeleteQ => delete(shared, &request.key).await,
        Increment | IncrementQ | Decrement | DecrementQ => {
            arith(shared, opcode, request, &extras, out).await
        }
        Flush | FlushQ => match flush_all(shared, extras.exptime as i32).await {
            Reply::Ok => Outcome::Reply(Status::Ok),
            _ => Outcome::Reply(Status::TemporaryFailure),
        },
        Noop | Verbosity => Outcome::Reply(Status::Ok),
        Quit => {
            encode_response(
                request.opcode_byte,
                request.opaque,
                &BinaryResponse::default(),
                out,
            );
            Outcome::Close
        }
        QuitQ => Outcome::Close,
        Stat => stat(shared, request, out),
        // SASL on a listener without `auth.memcache`: memcached without -S
        // does not know these opcodes.
        SaslListMechs | SaslAuth | SaslStep => Outcome::Reply(Status::UnknownCommand),
        Version => Outcome::Silent,
    }
}

async fn delete(shared: &Shared, key: &Bytes) -> Outcome {
    match shared
        .memcache_router
        .delete(DB, std::slice::from_ref(key))
        .await
    {
        Ok(deleted) if deleted[0] => Outcome::Reply(Status::Ok),
        Ok(_) => Outcome::Reply(Status::KeyNotFound),
        Err(error) => failed(&error),
    }
}

/// The fixed-size extras an opcode carries, read; `None` when the request's
/// lengths do not fit what memcached requires (a key where none may be, a
/// missing one, extras of the wrong size).
struct Extras {
    flags: u32,
    exptime: u32,
    delta: u64,
    initial: u64,
}

impl Extras {
    fn of(opcode: Opcode, request: &BinaryRequest) -> Option<Self> {
        use Opcode::*;
        let e = &request.extras[..];
        let word = |at: usize| u32::from_be_bytes(e[at..at + 4].try_into().expect("4 bytes"));
        let long = |at: usize| u64::from_be_bytes(e[at..at + 8].try_into().expect("8 bytes"));
        let keyed =
            !request.key.is_empty() && request.key.len() <= keyway_protocol::memcache::MAX_KEY;
        let none = Extras {
            flags: 0,
            exptime: 0,
            delta: 0,
            initial: 0,
        };
        let valid = match opcode {
            Get | GetQ | GetK | GetKQ | Delete | DeleteQ => keyed && e.is_empty(),
            Append | AppendQ | Prepend | PrependQ => keyed && e.is_empty(),
            Set | SetQ | Add | AddQ | Replace | ReplaceQ => keyed && e.len() == 8,
            Touch | Gat | GatQ | GatK | GatKQ => keyed && e.len() == 4,
            Increment | IncrementQ | Decrement | DecrementQ => {
                keyed && e.len() == 20 && request.value.is_empty()
            }
            Flush | FlushQ => request.key.is_empty() && (e.is_empty() || e.len() == 4),
            Verbosity => request.key.is_empty() && e.len() == 4,
            _ => true,
        };
        if !valid {
            return None;
        }
        Some(match (opcode, e.len()) {
            (Set | SetQ | Add | AddQ | Replace | ReplaceQ, _) => Extras {
                flags: word(0),
                exptime: word(4),
                ..none
            },
            (Increment | IncrementQ | Decrement | DecrementQ, _) => Extras {
                delta: long(0),
                initial: long(8),
                exptime: word(16),
                ..none
            },
            (Touch | Gat | GatQ | GatK | GatKQ | Flush | FlushQ, 4) => Extras {
                exptime: word(0),
                ..none
            },
            _ => none,
        })
    }
}

/// GET and GAT in their four forms, and TOUCH (a GAT without the value).
async fn retrieve(
    shared: &Arc<Shared>,
    request: &BinaryRequest,
    touch: Option<Expiry>,
    out: &mut BytesMut,
) -> Outcome {
    let opcode = request.opcode.expect("known");
    let keys = std::slice::from_ref(&request.key);
    let router = &shared.memcache_router;
    let items = match touch {
        None => router.get(DB, keys).await,
        Some(expiry) => router.get_and_touch(DB, keys, expiry).await,
    };
    let item = match items {
        Ok(items) => {
            shared.stats.record_reads(&items);
            items.into_iter().next().flatten()
        }
        Err(error) => return failed(&error),
    };
    let key: &[u8] = if opcode.returns_key() {
        &request.key
    } else {
        &[]
    };
    let Some(Item {
        value, flags, cas, ..
    }) = item
    else {
        if opcode.is_quiet() {
            return Outcome::Silent;
        }
        if opcode.returns_key() {
            let response = BinaryResponse {
                status: Status::KeyNotFound as u16,
                key,
                ..Default::default()
            };
            encode_response(request.opcode_byte, request.opaque, &response, out);
            return Outcome::Written;
        }
        return Outcome::Reply(Status::KeyNotFound);
    };
    let response = BinaryResponse {
        status: Status::Ok as u16,
        cas,
        extras: &flags.to_be_bytes(),
        key,
        value: if opcode == Opcode::Touch { &[] } else { &value },
    };
    encode_response(request.opcode_byte, request.opaque, &response, out);
    Outcome::Written
}

/// SET, ADD, REPLACE (compare-and-swap when the header carries a CAS),
/// APPEND and PREPEND, with memcached's binary statuses: an ADD that finds
/// the key is KeyExists, a REPLACE that does not is KeyNotFound.
async fn store_value(
    shared: &Arc<Shared>,
    opcode: Opcode,
    request: &BinaryRequest,
    extras: &Extras,
) -> Status {
    use Opcode::*;
    let command = match opcode {
        Set | SetQ | Replace | ReplaceQ if request.cas != 0 => StoreCommand::Cas,
        Set | SetQ => StoreCommand::Set,
        Add | AddQ => StoreCommand::Add,
        Replace | ReplaceQ => StoreCommand::Replace,
        Append | AppendQ => StoreCommand::Append,
        _ => StoreCommand::Prepend,
    };
    let reply = store(
        shared,
        command,
        request.key.clone(),
        extras.flags,
        extras.exptime as i32,
        request.value.clone(),
        request.cas,
    )
    .await;
    match reply {
        Reply::Stored => Status::Ok,
        Reply::NotStored if command == StoreCommand::Add => Status::KeyExists,
        Reply::NotStored if command == StoreCommand::Replace => Status::KeyNotFound,
        Reply::NotStored => Status::NotStored,
        Reply::Exists => Status::KeyExists,
        Reply::NotFound => Status::KeyNotFound,
        Reply::ServerError(message) if message.contains("too large") => Status::TooLarge,
        Reply::ServerError(message) if message.contains("out of memory") => Status::OutOfMemory,
        Reply::ClientError(_) => Status::InvalidArguments,
        _ => Status::TemporaryFailure,
    }
}

/// INCR/DECR: the new value as 8 bytes; a missing counter is created with
/// the initial value unless the exptime is 0xffffffff.
async fn arith(
    shared: &Arc<Shared>,
    opcode: Opcode,
    request: &BinaryRequest,
    extras: &Extras,
    out: &mut BytesMut,
) -> Outcome {
    let incr = matches!(opcode, Opcode::Increment | Opcode::IncrementQ);
    let router = &shared.memcache_router;
    let key = &request.key;
    let arith = Arith::Memcache {
        delta: extras.delta,
        incr,
    };
    // Twice at most: a counter another client creates between the miss and
    // the create is then incremented.
    for _ in 0..2 {
        let value = match router.arith(DB, key, arith).await {
            Ok(ArithOutcome::Unsigned(n)) => n,
            Ok(_) if extras.exptime == NO_CREATE => return Outcome::Reply(Status::KeyNotFound),
            Ok(_) => {
                let expiry = ExpiryUpdate::Set(expiry_from_exptime(extras.exptime as i32));
                let initial = Bytes::from(extras.initial.to_string());
                let create = Store::new(key.clone(), initial, StoreMode::Add, expiry);
                match router.store(DB, create).await {
                    Ok(outcome) if outcome.status == StoreStatus::Stored => extras.initial,
                    Ok(_) => continue,
                    Err(error) => return failed(&error),
                }
            }
            Err(RouteError::Backend(error)) if error.is_client_error() => {
                return Outcome::Reply(Status::NonNumeric)
            }
            Err(error) => return failed(&error),
        };
        if opcode.is_quiet() {
            return Outcome::Silent;
        }
        let response = BinaryResponse {
            value: &value.to_be_bytes(),
            ..Default::default()
        };
        encode_response(request.opcode_byte, request.opaque, &response, out);
        return Outcome::Written;
    }
    Outcome::Reply(Status::TemporaryFailure)
}

/// STAT [group]: one response per figure, then one with neither key nor
/// value.
fn stat(shared: &Shared, request: &BinaryRequest, out: &mut BytesMut) -> Outcome {
    let group = (!request.key.is_empty()).then_some(&request.key[..]);
    if group == Some(b"reset") {
        shared.stats.reset();
    } else {
        let Some(lines) = stats_group(shared, group) else {
            return Outcome::Reply(Status::KeyNotFound);
        };
        for (name, value) in lines {
            let response = BinaryResponse {
                key: name.as_bytes(),
                value: value.as_bytes(),
                ..Default::default()
            };
            encode_response(request.opcode_byte, request.opaque, &response, out);
        }
    }
    encode_response(
        request.opcode_byte,
        request.opaque,
        &BinaryResponse::default(),
        out,
    );
    Outcome::Written
}

/// A request the router could not carry out: memcached has no status for
/// "the store behind me failed", so it is a temporary failure.
fn failed(error: &RouteError) -> Outcome {
    match error {
        RouteError::Backend(error) if error.is_client_error() => {
            Outcome::Reply(Status::InvalidArguments)
        }
        _ => Outcome::Reply(Status::TemporaryFailure),
    }
}
