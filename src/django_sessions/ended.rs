//! An ended session stays ended. Django's cache session engine saves with a
//! plain `set`, so a request still in flight when its user logged out would
//! write the session back for its whole TTL. When a session key is deleted
//! through Keyway, a marker (`<session key>:keyway-ended`) is written first,
//! in the same route target as the session (so every tier, replica and
//! both sides of a migration hold it, and every host sees it); a later
//! write of that key is then refused as a failed conditional write
//! (memcached `NOT_STORED`, RESP nil).
//!
//! Order makes it hold without a transaction across stores: a delete writes
//! the marker, then deletes; a write checks the marker, writes, and checks
//! again, deleting what it wrote if the marker appeared meanwhile. Whatever
//! the interleaving, either the write sees the marker or the delete comes
//! after the write. Where the marker and the session are on one redis
//! server (directly or as a tier's durable member), a plain set checks and
//! writes in one script instead: one round trip, and atomic.

use bytes::Bytes;

use super::audit_late_write;
use crate::backend::{Ops, Result};
use crate::op::{Db, Expiry, ExpiryUpdate, Store, StoreMode, StoreOutcome, StoreStatus};
use crate::policy::Target;

const SUFFIX: &[u8] = b":keyway-ended";

/// The key of `session_key`'s marker.
pub fn marker_key(session_key: &[u8]) -> Bytes {
    let mut key = Vec::with_capacity(session_key.len() + SUFFIX.len());
    key.extend_from_slice(session_key);
    key.extend_from_slice(SUFFIX);
    key.into()
}

async fn is_ended(target: &Target, db: Db, key: &[u8]) -> Result<bool> {
    let marker = [marker_key(key)];
    Ok(target.get(db, &marker).await?[0].is_some())
}

/// Whether any of `keys` (session keys of `target`) has ended.
pub async fn any_ended(target: &Target, db: Db, keys: &[Bytes]) -> Result<bool> {
    let markers: Vec<Bytes> = keys.iter().map(|key| marker_key(key)).collect();
    Ok(target.get(db, &markers).await?.iter().any(Option::is_some))
}

fn refused(mode: StoreMode) -> StoreOutcome {
    StoreOutcome::refused(match mode {
        StoreMode::Cas(_) => StoreStatus::NotFound,
        _ => StoreStatus::NotStored,
    })
}

/// Writes `store` (a session key's) unless the session has ended.
pub async fn store_unless_ended(target: &Target, db: Db, mut store: Store) -> Result<StoreOutcome> {
    let name = target.stats.name();
    if store.is_plain_set() && target.stores_unless_ended() {
        // One step where the marker lives (a script on one redis): a plain
        // set otherwise always stores, so NotStored means ended.
        let key = store.key.clone();
        let mode = store.mode;
        store.unless_ended = Some(marker_key(&key));
        let outcome = target.store(db, store).await?;
        if outcome.status == StoreStatus::NotStored {
            audit_late_write(&key, name);
            return Ok(refused(mode));
        }
        return Ok(outcome);
    }
    if is_ended(target, db, &store.key).await? {
        audit_late_write(&store.key, name);
        return Ok(refused(store.mode));
    }
    let key = store.key.clone();
    let mode = store.mode;
    let outcome = target.store(db, store).await?;
    if outcome.status == StoreStatus::Stored && is_ended(target, db, &key).await? {
        // Ended while this write was on its way: undo it.
        target.delete(db, std::slice::from_ref(&key)).await?;
        audit_late_write(&key, name);
        return Ok(refused(mode));
    }
    Ok(outcome)
}

/// Marks each of `keys` (session keys of `target`) ended, for `lifetime`.
pub async fn mark(target: &Target, db: Db, keys: &[Bytes], lifetime: Expiry) -> Result<()> {
    for key in keys {
        let marker = Store::new(
            marker_key(key),
            Bytes::from_static(b"ended"),
            StoreMode::Set,
            ExpiryUpdate::Set(lifetime),
        );
        target.store(db, marker).await?;
    }
    Ok(())
}
