//! The typed operations back: [`Ops`] gives anything that executes
//! [`Call`]s (a backend, a policy, a route's target) one method per
//! operation, each building its call and taking its answer's shape.

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;

use super::call::{Answer, Call, Execute};
use super::{BackendError, Result};
use crate::op::{
    Arith, ArithOutcome, Db, ExpireCondition, Expiry, Item, ScanPage, Store, StoreOutcome, Ttl,
};

/// An answer of another shape than the call names: a bug in whatever
/// answered, reported as a failed request rather than a crash.
fn misshapen(answer: Answer) -> BackendError {
    BackendError::Unavailable {
        backend: "keyway".into(),
        message: format!("internal error: unexpected answer {answer:?}"),
    }
}

macro_rules! shaped {
    ($answer:expr, $variant:ident) => {
        match $answer? {
            Answer::$variant(value) => Ok(value),
            other => Err(misshapen(other)),
        }
    };
}

/// The typed operations, for anything that executes [`Call`]s.
pub trait Ops: Execute {
    fn get<'a>(
        &'a self,
        db: Db,
        keys: &'a [Bytes],
    ) -> impl Future<Output = Result<Vec<Option<Item>>>> + Send + 'a {
        let call = Call::Get {
            db,
            keys: Cow::Borrowed(keys),
        };
        async move { shaped!(self.execute(call).await, Items) }
    }

    fn get_and_touch<'a>(
        &'a self,
        db: Db,
        keys: &'a [Bytes],
        expiry: Expiry,
    ) -> impl Future<Output = Result<Vec<Option<Item>>>> + Send + 'a {
        let call = Call::GetAndTouch {
            db,
            keys: Cow::Borrowed(keys),
            expiry,
        };
        async move { shaped!(self.execute(call).await, Items) }
    }

    fn get_and_delete<'a>(
        &'a self,
        db: Db,
        key: &'a Bytes,
    ) -> impl Future<Output = Result<Option<Item>>> + Send + 'a {
        let call = Call::GetAndDelete {
            db,
            key: Cow::Borrowed(key),
        };
        async move { shaped!(self.execute(call).await, Item) }
    }

    fn store(&self, db: Db, store: Store) -> impl Future<Output = Result<StoreOutcome>> + Send {
        async move { shaped!(self.execute(Call::Store { db, store }).await, Stored) }
    }

    fn store_all_if_absent(
        &self,
        db: Db,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> impl Future<Output = Result<bool>> + Send {
        async move {
            shaped!(
                self.execute(Call::StoreAllIfAbsent { db, pairs }).await,
                Done
            )
        }
    }

    fn delete<'a>(
        &'a self,
        db: Db,
        keys: &'a [Bytes],
    ) -> impl Future<Output = Result<Vec<bool>>> + Send + 'a {
        let call = Call::Delete {
            db,
            keys: Cow::Borrowed(keys),
        };
        async move { shaped!(self.execute(call).await, Existed) }
    }

    fn arith<'a>(
        &'a self,
        db: Db,
        key: &'a Bytes,
        arith: Arith,
    ) -> impl Future<Output = Result<ArithOutcome>> + Send + 'a {
        let call = Call::Arith {
            db,
            key: Cow::Borrowed(key),
            arith,
        };
        async move { shaped!(self.execute(call).await, Arith) }
    }

    fn expire<'a>(
        &'a self,
        db: Db,
        key: &'a Bytes,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> impl Future<Output = Result<bool>> + Send + 'a {
        let call = Call::Expire {
            db,
            key: Cow::Borrowed(key),
            expiry,
            condition,
        };
        async move { shaped!(self.execute(call).await, Done) }
    }

    fn ttl<'a>(&'a self, db: Db, key: &'a Bytes) -> impl Future<Output = Result<Ttl>> + Send + 'a {
        let call = Call::Ttl {
            db,
            key: Cow::Borrowed(key),
        };
        async move { shaped!(self.execute(call).await, Ttl) }
    }

    fn scan<'a>(
        &'a self,
        db: Db,
        cursor: u64,
        pattern: Option<&'a [u8]>,
        count: usize,
    ) -> impl Future<Output = Result<ScanPage>> + Send + 'a {
        let call = Call::Scan {
            db,
            cursor,
            pattern: pattern.map(Cow::Borrowed),
            count,
        };
        async move { shaped!(self.execute(call).await, Page) }
    }

    fn len(&self, db: Db) -> impl Future<Output = Result<usize>> + Send {
        async move { shaped!(self.execute(Call::Len { db }).await, Count) }
    }

    fn flush(&self, db: Option<Db>) -> impl Future<Output = Result<()>> + Send {
        async move {
            match self.execute(Call::Flush { db }).await? {
                Answer::Flushed => Ok(()),
                other => Err(misshapen(other)),
            }
        }
    }
}

impl<T: Execute + ?Sized> Ops for T {}
