//! memcached text frontend: requests on keys a memcached route owns are
//! forwarded as they came ([`forward`]); every other decoded request becomes
//! router operations, and each outcome the exact reply memcached 1.6 would send.

mod binary;
mod dumps;
mod forward;
mod meta;
mod stats;

use binary::Protocol;
use stats::write_stats;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keyway_protocol::memcache::{
    encode, AuthDecoder, AuthFrame, BinaryDecoder, DecodeError, Decoder, Limits, Reply, Request,
    StoreCommand, AUTH_FAILED, AUTH_STORED, REQUEST_MAGIC,
};

use crate::op::{
    now_ms, Arith, ArithOutcome, ExpireCondition, Expiry, ExpiryUpdate, Store, StoreMode,
    StoreStatus,
};
use crate::router::RouteError;
use crate::session::{Flow, Session, Shared};

/// What `version` reports: memcached's version (clients parse it), then ours.
pub const VERSION: &str = concat!("1.6.18-keyway-", env!("CARGO_PKG_VERSION"));

/// memcached namespaces are db 0 of every backend.
const DB: u8 = 0;

/// memcached treats exptimes above 30 days as absolute unix times.
const RELATIVE_EXPTIME_MAX: i32 = 60 * 60 * 24 * 30;

pub struct MemcacheSession {
    shared: Arc<Shared>,
    decoder: Decoder,
    /// The protocol, decided by the connection's first byte (0x80: binary).
    protocol: Protocol,
    /// Present until the client authenticates (`auth.memcache = "ascii"`).
    auth: Option<AuthDecoder>,
    /// The user it authenticated as, and the configuration generation it
    /// was last found in: a reload that removes the user closes the
    /// connection (as the RESP listener's).
    user: Option<(Bytes, usize)>,
}

impl MemcacheSession {
    pub fn new(shared: Arc<Shared>) -> Self {
        let limits = Limits {
            max_item_size: shared.config.limits.item_size.as_usize(),
            max_get_line: shared.config.limits.max_get_line.as_usize(),
            ..Limits::default()
        };
        let auth = shared
            .config
            .auth
            .memcache_required()
            .then(AuthDecoder::default);
        Self {
            shared,
            decoder: Decoder::new(limits),
            protocol: Protocol::Undecided,
            auth,
            user: None,
        }
    }

    /// A TLS client presented a certificate (verified against `[tls]
    /// client_ca_file`) with common name `name`. With `auth.memcache =
    /// "certificate"` the certificate is the credential (the listener
    /// admits no client without one); with `"ascii"` and `[tls] client_user
    /// = "cn"`, a certificate naming a user stands for its `set`.
    pub fn certified(mut self, name: Option<String>) -> Self {
        let Some(name) = name else {
            return self;
        };
        let config = &self.shared.config;
        let user = self.shared.users.find(name.as_bytes()).is_some();
        let by_certificate = config.auth.memcache == Some(crate::config::MemcacheAuth::Certificate);
        if by_certificate || (config.certificate_names_user() && user) {
            self.auth = None;
        }
        if user {
            self.user = Some((Bytes::from(name), Arc::as_ptr(&self.shared) as usize));
        }
        self
    }

    /// memcached's ASCII authentication: every line is refused until a
    /// `set` whose data is a configured `<user> <password>`. Returns
    /// `None` once authenticated (the rest of `input` is served as commands).
    fn authenticate(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Option<Flow> {
        let auth = self.auth.as_mut()?;
        loop {
            let Some(frame) = auth.decode(input) else {
                return Some(Flow::Continue);
            };
            self.shared.stats.commands.add(1);
            let AuthFrame::Credentials { user, password } = frame else {
                match frame.reply() {
                    Some(reply) => output.extend_from_slice(reply),
                    None => return Some(Flow::Close),
                }
                continue;
            };
            self.shared.stats.auth_attempts.add(1);
            if self.shared.users.check(&user, &password) {
                output.extend_from_slice(AUTH_STORED);
                self.auth = None;
                self.user = Some((user, Arc::as_ptr(&self.shared) as usize));
                return None;
            }
            // Counted (stats auth_errors), never logged, as RESP's AUTH.
            self.shared.stats.auth_failures.add(1);
            output.extend_from_slice(AUTH_FAILED);
        }
    }
}

impl MemcacheSession {
    /// Where one turn stops, text or binary: after `max_pipeline` requests
    /// or `max_output_buffer` bytes of replies, yielding if input remains.
    fn turn_spent(&self, answered: usize, input: &BytesMut, output: &BytesMut) -> Option<Flow> {
        let limits = &self.shared.config.limits;
        if answered < limits.max_pipeline && output.len() < limits.max_output_buffer.as_usize() {
            return None;
        }
        Some(if input.is_empty() {
            Flow::Continue
        } else {
            Flow::Yield
        })
    }

    /// Whether a reload removed the user this connection authenticated as
    /// (it is then closed, as on the RESP listener).
    fn user_was_removed(&mut self) -> bool {
        let Some((user, generation)) = &mut self.user else {
            return false;
        };
        let now = Arc::as_ptr(&self.shared) as usize;
        if *generation == now {
            return false;
        }
        *generation = now;
        if self.shared.users.required() && self.shared.users.find(user).is_none() {
            tracing::info!(
                user = %String::from_utf8_lossy(user),
                "client disconnected: a reload removed the user it authenticated as"
            );
            return true;
        }
        false
    }
}

impl Session for MemcacheSession {
    fn shared_mut(&mut self) -> &mut Arc<Shared> {
        &mut self.shared
    }

    async fn process(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Flow {
        if self.protocol == Protocol::Undecided {
            let Some(&first) = input.first() else {
                return Flow::Continue;
            };
            self.protocol = if first == REQUEST_MAGIC {
                // The body limit is set for each read (`process_binary`).
                Protocol::Binary(BinaryDecoder::new(0))
            } else {
                Protocol::Text
            };
        }
        if matches!(self.protocol, Protocol::Binary(_)) {
            return self.process_binary(input, output).await;
        }
        if let Some(flow) = self.authenticate(input, output) {
            return flow;
        }
        if self.user_was_removed() {
            return Flow::Close;
        }
        let mut answered = 0;
        loop {
            if let Some(flow) = self.turn_spent(answered, input, output) {
                return flow;
            }
            match self.decoder.decode_raw(input) {
                Ok(None) => return Flow::Continue,
                Ok(Some((request, raw))) => {
                    answered += 1;
                    self.shared.stats.commands.add(1);
                    if forward::forward(&self.shared, &request, &raw, output).await {
                        continue;
                    }
                    if execute(&self.shared, request, output).await == Flow::Close {
                        return Flow::Close;
                    }
                }
                Err(DecodeError::BadDataChunk { noreply: true } | DecodeError::Silenced) => {}
                Err(error) => {
                    let fatal = error.is_fatal();
                    output.extend_from_slice(error.to_string().as_bytes());
                    output.extend_from_slice(b"\r\n");
                    if fatal {
                        return Flow::Close;
                    }
                }
            }
        }
    }
}

/// memcached's exptime rules: 0 never, negative already expired, up to 30
/// days relative, beyond that an absolute unix time.
pub fn expiry_from_exptime(exptime: i32) -> Expiry {
    match exptime {
        0 => Expiry::Never,
        e if e < 0 => Expiry::EXPIRED,
        e if e > RELATIVE_EXPTIME_MAX => Expiry::At(e as u64 * 1000),
        e => Expiry::after_ms(e as u64 * 1000),
    }
}

fn error_reply(error: &RouteError) -> Reply {
    match error {
        RouteError::Backend(e) if e.is_client_error() => Reply::ClientError(e.to_string()),
        // Backend errors display as memcached words them ("out of memory storing object").
        other => Reply::ServerError(other.to_string()),
    }
}

/// A storage command whose value was over the item size limit.
async fn too_large(shared: &Shared, command: StoreCommand, key: Bytes) -> Reply {
    // memcached drops the old value on a failed set so readers never
    // see stale data (Django's test_memcached_deletes_key_on_failed_set).
    if command == StoreCommand::Set {
        let _ = shared.memcache_router.delete(DB, &[key]).await;
    }
    Reply::ServerError("object too large for cache".into())
}

async fn delete(shared: &Shared, key: Bytes) -> Reply {
    match shared.memcache_router.delete(DB, &[key]).await {
        Ok(deleted) if deleted[0] => Reply::Deleted,
        Ok(_) => Reply::NotFound,
        Err(e) => error_reply(&e),
    }
}

async fn arith(shared: &Shared, key: Bytes, delta: u64, incr: bool) -> Reply {
    match shared
        .memcache_router
        .arith(DB, &key, Arith::Memcache { delta, incr })
        .await
    {
        Ok(ArithOutcome::Unsigned(n)) => Reply::Number(n),
        Ok(_) => Reply::NotFound,
        Err(e) => error_reply(&e),
    }
}

async fn touch(shared: &Shared, key: Bytes, exptime: i32) -> Reply {
    let expiry = expiry_from_exptime(exptime);
    match shared
        .memcache_router
        .expire(DB, &key, expiry, ExpireCondition::Always)
        .await
    {
        Ok(true) => Reply::Touched,
        Ok(false) => Reply::NotFound,
        Err(e) => error_reply(&e),
    }
}

async fn execute(shared: &Arc<Shared>, request: Request, out: &mut BytesMut) -> Flow {
    let (noreply, reply) = match request {
        Request::Get { keys, with_cas } => {
            let items = shared.memcache_router.get(DB, &keys).await;
            return write_values(shared, keys, items, with_cas, out);
        }
        Request::GetAndTouch {
            exptime,
            keys,
            with_cas,
        } => {
            let items = shared
                .memcache_router
                .get_and_touch(DB, &keys, expiry_from_exptime(exptime))
                .await;
            return write_values(shared, keys, items, with_cas, out);
        }
        Request::Meta(request) => {
            meta::execute(shared, &request, out).await;
            return Flow::Continue;
        }
        Request::Stats { args } if args.first().is_some_and(|a| a == "cachedump") => {
            dumps::cachedump(shared, &args, out).await;
            return Flow::Continue;
        }
        Request::Stats { args } => {
            return write_stats(shared, &args, out).await;
        }
        Request::LruCrawler { args } => {
            dumps::lru_crawler(shared, &args, out).await;
            return Flow::Continue;
        }
        Request::Quit => return Flow::Close,
        request => answer(shared, request).await,
    };
    if !noreply {
        encode(&reply, out);
    }
    Flow::Continue
}

/// The one-line answer to a request that is not a retrieval, a meta
/// command or `stats`, and whether the client asked for none (noreply).
async fn answer(shared: &Arc<Shared>, request: Request) -> (bool, Reply) {
    match request {
        Request::Store {
            command,
            key,
            flags,
            exptime,
            data,
            cas_unique,
            noreply,
        } => {
            shared.stats.sets.add(1);
            let reply = store(shared, command, key, flags, exptime, data, cas_unique).await;
            (noreply, reply)
        }
        Request::TooLarge {
            command,
            key,
            noreply,
        } => (noreply, too_large(shared, command, key).await),
        Request::Delete { key, noreply } => (noreply, delete(shared, key).await),
        Request::Arith {
            key,
            delta,
            incr,
            noreply,
        } => (noreply, arith(shared, key, delta, incr).await),
        Request::Touch {
            key,
            exptime,
            noreply,
        } => (noreply, touch(shared, key, exptime).await),
        Request::FlushAll { delay, noreply } => (noreply, flush_all(shared, delay).await),
        Request::Version => (false, Reply::Version(VERSION.into())),
        Request::MetaNoOp => (false, Reply::MetaNoOp),
        Request::Shutdown => (false, Reply::Line("ERROR: shutdown not enabled")),
        // Accepted as memcached accepts it; Keyway's memory is each memory
        // backend's `capacity` (docs/protocol-compatibility.md).
        Request::CacheMemlimit { megabytes, noreply } if megabytes < 8 => (
            noreply,
            Reply::Line("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"),
        ),
        Request::CacheMemlimit { noreply, .. } => (noreply, Reply::Ok),
        Request::Verbosity { noreply } => (noreply, Reply::Ok),
        // Answered by `execute` before it asks here.
        Request::Get { .. }
        | Request::GetAndTouch { .. }
        | Request::Meta(_)
        | Request::Stats { .. }
        | Request::LruCrawler { .. }
        | Request::Quit => (false, Reply::Line("ERROR")),
    }
}

async fn store(
    shared: &Shared,
    command: StoreCommand,
    key: Bytes,
    flags: u32,
    exptime: i32,
    value: Bytes,
    cas_unique: u64,
) -> Reply {
    let (mode, expiry) = match command {
        StoreCommand::Set => (StoreMode::Set, None),
        StoreCommand::Add => (StoreMode::Add, None),
        StoreCommand::Replace => (StoreMode::Replace, None),
        StoreCommand::Cas => (StoreMode::Cas(cas_unique), None),
        // memcached ignores append/prepend's flags and exptime.
        StoreCommand::Append => (StoreMode::Append, Some(ExpiryUpdate::Keep)),
        StoreCommand::Prepend => (StoreMode::Prepend, Some(ExpiryUpdate::Keep)),
    };
    let expiry = expiry.unwrap_or(ExpiryUpdate::Set(expiry_from_exptime(exptime)));
    let mut store = Store::new(key, value, mode, expiry);
    store.flags = flags;
    match shared.memcache_router.store(DB, store).await {
        Ok(outcome) => match outcome.status {
            StoreStatus::Stored => Reply::Stored,
            StoreStatus::NotStored => Reply::NotStored,
            StoreStatus::Exists => Reply::Exists,
            StoreStatus::NotFound => Reply::NotFound,
        },
        Err(e) => error_reply(&e),
    }
}

fn write_values(
    shared: &Shared,
    keys: Vec<Bytes>,
    items: Result<Vec<Option<crate::op::Item>>, RouteError>,
    with_cas: bool,
    out: &mut BytesMut,
) -> Flow {
    match items {
        Ok(items) => {
            shared.stats.record_reads(&items);
            for (key, item) in keys.into_iter().zip(items) {
                if let Some(item) = item {
                    let cas = with_cas.then_some(item.cas);
                    encode(
                        &Reply::Value {
                            key,
                            flags: item.flags,
                            data: item.value,
                            cas,
                        },
                        out,
                    );
                }
            }
            encode(&Reply::End, out);
        }
        Err(e) => encode(&error_reply(&e), out),
    }
    Flow::Continue
}

async fn flush_all(shared: &Arc<Shared>, delay: i32) -> Reply {
    // memcached's clock ticks in seconds and a delayed flush takes effect
    // one tick early: `flush_all 1` empties the cache at once, `flush_all
    // 2` a second later.
    let delay = if delay > 0 { delay - 1 } else { delay };
    let expiry = expiry_from_exptime(delay);
    let wait_ms = match expiry {
        Expiry::At(at) if delay > 0 => at.saturating_sub(now_ms()),
        _ => 0,
    };
    if wait_ms == 0 {
        return match shared.memcache_router.flush(Some(DB)).await {
            Ok(()) => Reply::Ok,
            Err(e) => error_reply(&e),
        };
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        if let Err(error) = shared.memcache_router.flush(Some(DB)).await {
            tracing::warn!(%error, "delayed flush_all failed");
        }
    });
    Reply::Ok
}
