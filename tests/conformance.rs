//! One conformance suite for every backend: the same cases through the
//! `Backend` trait, against memory, a real two-server memcached pool, redis
//! (directly, through a Redis Sentinel, and a three-primary Redis Cluster), SQLite,
//! PostgreSQL and MariaDB (started by the tests, or named by
//! KEYWAY_TEST_POSTGRES_URL / KEYWAY_TEST_MYSQL_URL; each case gets its own
//! table). Where memcached cannot do something (list keys, per-db flush,
//! MSETNX, negative counters) the case asserts the explicit error instead.

mod common;

use bytes::Bytes;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{mariadb_url, postgres_url, start_memcached, start_redis};
use keyway::backend::memory::MemoryBackend;
use keyway::backend::{AnyBackend, Backend, BackendError, Ops};
use keyway::config::BackendConfig;
use keyway::op::{
    now_ms, Arith, ArithOutcome, Clock, ExpireCondition, Expiry, ExpiryUpdate, Store, StoreMode,
    StoreStatus, Ttl,
};

/// What a backend needs kept alive while a case runs (servers, temp dirs).
type Guard = Box<dyn std::any::Any + Send>;

/// Every backend kind, each on a fresh store; with `KEYWAY_QUICK` set
/// (`./tests/run.sh quick`), memory and SQLite only.
fn backends() -> Vec<(&'static str, AnyBackend, Guard)> {
    static TABLES: AtomicUsize = AtomicUsize::new(0);
    let sql = |url: String| {
        let mut config = BackendConfig::new(url);
        config.table = format!(
            "conformance_{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        (AnyBackend::build(&config, dir.path()).unwrap(), dir)
    };
    // Memory reads expiry by a clock the expiry case moves (its guard).
    let clock = Clock::adjustable();
    let memory = AnyBackend::Memory(MemoryBackend::with_clock(64 * 1024 * 1024, clock.clone()));
    let (sqlite, sqlite_dir) = sql("sqlite://items.sqlite3".into());
    if std::env::var_os("KEYWAY_QUICK").is_some() {
        return vec![
            ("memory", memory, Box::new(clock)),
            ("sqlite", sqlite, Box::new(sqlite_dir)),
        ];
    }
    let servers = vec![start_memcached(), start_memcached()];
    let url = format!("memcached://{},{}:2", servers[0].addr, servers[1].addr);
    let memcached = AnyBackend::build(&BackendConfig::new(url), Path::new(".")).unwrap();
    let redis_server = start_redis();
    let redis = AnyBackend::build(
        &BackendConfig::new(format!("redis://{}", redis_server.addr)),
        Path::new("."),
    )
    .unwrap();
    // The same redis, found through a Redis Sentinel (redis-sentinel://).
    let sentinel_redis = start_redis();
    let sentinel_dir = tempfile::tempdir().unwrap();
    let sentinel_port = common::free_port();
    let conf = sentinel_dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 {} 1\n",
            sentinel_redis.addr.port()
        ),
    )
    .unwrap();
    let sentinel = common::start_redis_sentinel(&conf, sentinel_port);
    let via_sentinel = AnyBackend::build(
        &BackendConfig::new(format!("redis-sentinel://{}/main", sentinel.addr)),
        Path::new("."),
    )
    .unwrap();
    // A Redis Cluster of three primaries (redis-cluster://).
    let cluster = common::start_redis_cluster(3, 0);
    let via_cluster = AnyBackend::build(
        &BackendConfig::new(format!("redis-cluster://{}", cluster.seeds())),
        Path::new("."),
    )
    .unwrap();
    let (postgres, _) = sql(postgres_url());
    let (mariadb, _) = sql(mariadb_url());
    vec![
        ("redis-cluster", via_cluster, Box::new(cluster)),
        (
            "redis-sentinel",
            via_sentinel,
            Box::new((sentinel_redis, sentinel, sentinel_dir)),
        ),
        ("memory", memory, Box::new(clock)),
        ("memcached", memcached, Box::new(servers)),
        ("redis", redis, Box::new(redis_server)),
        ("sqlite", sqlite, Box::new(sqlite_dir)),
        ("postgres", postgres, Box::new(())),
        ("mariadb", mariadb, Box::new(())),
    ]
}

fn is_unsupported<T: std::fmt::Debug>(result: Result<T, BackendError>) -> bool {
    matches!(result, Err(BackendError::Unsupported(_)))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn store(key: &str, value: &str, mode: StoreMode) -> Store {
    Store::new(b(key), b(value), mode, ExpiryUpdate::Set(Expiry::Never))
}

async fn value<B: Ops>(backend: &B, db: u8, key: &str) -> Option<(String, u32)> {
    backend
        .get(db, &[b(key)])
        .await
        .unwrap()
        .remove(0)
        .map(|i| (String::from_utf8(i.value.to_vec()).unwrap(), i.flags))
}

macro_rules! for_each_backend {
    ($name:ident, |$kind:ident, $backend:ident, $guard:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            for ($kind, $backend, $guard) in backends() {
                let run = async { $body };
                run.await;
            }
        }
    };
    ($name:ident, |$kind:ident, $backend:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            for ($kind, $backend, _guard) in backends() {
                let run = async { $body };
                run.await;
            }
        }
    };
}

for_each_backend!(set_get_flags_and_binary_values, |_kind, backend| {
    let mut s = store("k", "", StoreMode::Set);
    s.value = Bytes::from_static(b"\r\nEND\r\n\0\xff");
    s.flags = u32::MAX;
    assert_eq!(
        backend.store(0, s).await.unwrap().status,
        StoreStatus::Stored
    );
    let item = backend.get(0, &[b("k"), b("missing")]).await.unwrap();
    assert_eq!(
        item[0].as_ref().unwrap().value,
        Bytes::from_static(b"\r\nEND\r\n\0\xff")
    );
    assert_eq!(item[0].as_ref().unwrap().flags, u32::MAX);
    assert_eq!(item[1], None);
});

for_each_backend!(conditional_stores, |_kind, backend| {
    assert_eq!(
        backend
            .store(0, store("k", "1", StoreMode::Replace))
            .await
            .unwrap()
            .status,
        StoreStatus::NotStored
    );
    assert_eq!(
        backend
            .store(0, store("k", "1", StoreMode::Add))
            .await
            .unwrap()
            .status,
        StoreStatus::Stored
    );
    assert_eq!(
        backend
            .store(0, store("k", "2", StoreMode::Add))
            .await
            .unwrap()
            .status,
        StoreStatus::NotStored
    );
    assert_eq!(
        backend
            .store(0, store("k", "3", StoreMode::Replace))
            .await
            .unwrap()
            .status,
        StoreStatus::Stored
    );
    assert_eq!(value(&backend, 0, "k").await, Some(("3".into(), 0)));
    let cas = backend.get(0, &[b("k")]).await.unwrap()[0]
        .as_ref()
        .unwrap()
        .cas;
    assert_eq!(
        backend
            .store(0, store("k", "4", StoreMode::Cas(cas + 1000)))
            .await
            .unwrap()
            .status,
        StoreStatus::Exists
    );
    assert_eq!(
        backend
            .store(0, store("k", "4", StoreMode::Cas(cas)))
            .await
            .unwrap()
            .status,
        StoreStatus::Stored
    );
    assert_eq!(
        backend
            .store(0, store("k", "5", StoreMode::Cas(cas)))
            .await
            .unwrap()
            .status,
        StoreStatus::Exists
    );
    assert_eq!(
        backend
            .store(0, store("none", "5", StoreMode::Cas(cas)))
            .await
            .unwrap()
            .status,
        StoreStatus::NotFound
    );
    let mut with_old = store("k", "6", StoreMode::Set);
    with_old.return_old = true;
    assert_eq!(
        backend.store(0, with_old).await.unwrap().old.unwrap().value,
        b("4")
    );
});

// redis 7: `SET k v NX GET` on a present key answers the value it leaves
// in place; `XX GET` on an absent one answers nil and stores nothing.
for_each_backend!(
    refused_stores_still_return_the_old_item,
    |_kind, backend| {
        backend
            .store(0, store("k", "old", StoreMode::Set))
            .await
            .unwrap();
        let mut add = store("k", "new", StoreMode::Add);
        add.return_old = true;
        let outcome = backend.store(0, add).await.unwrap();
        assert_eq!(outcome.status, StoreStatus::NotStored);
        assert_eq!(outcome.old.map(|item| item.value), Some(b("old")));
        assert_eq!(value(&backend, 0, "k").await, Some(("old".into(), 0)));
        let mut replace = store("absent", "new", StoreMode::Replace);
        replace.return_old = true;
        let outcome = backend.store(0, replace).await.unwrap();
        assert_eq!(outcome.status, StoreStatus::NotStored);
        assert_eq!(outcome.old, None);
        assert_eq!(value(&backend, 0, "absent").await, None);
    }
);

for_each_backend!(append_prepend_keep_flags_and_expiry, |_kind, backend| {
    assert_eq!(
        backend
            .store(0, store("k", "x", StoreMode::Append))
            .await
            .unwrap()
            .status,
        StoreStatus::NotStored
    );
    let mut s = store("k", "b", StoreMode::Set);
    s.flags = 16;
    s.expiry = ExpiryUpdate::Set(Expiry::after_ms(100_000));
    backend.store(0, s).await.unwrap();
    let mut append = store("k", "c", StoreMode::Append);
    append.expiry = ExpiryUpdate::Keep;
    backend.store(0, append).await.unwrap();
    let mut prepend = store("k", "a", StoreMode::Prepend);
    prepend.expiry = ExpiryUpdate::Keep;
    backend.store(0, prepend).await.unwrap();
    assert_eq!(value(&backend, 0, "k").await, Some(("abc".into(), 16)));
    assert!(matches!(backend.ttl(0, &b("k")).await.unwrap(), Ttl::Millis(ms) if ms > 90_000));
    let created = backend
        .store(0, store("new", "xy", StoreMode::AppendOrCreate))
        .await
        .unwrap();
    assert_eq!((created.status, created.len), (StoreStatus::Stored, 2));
});

for_each_backend!(arithmetic_in_both_dialects, |kind, backend| {
    let mc = |delta, incr| Arith::Memcache { delta, incr };
    assert_eq!(
        backend.arith(0, &b("n"), mc(1, true)).await.unwrap(),
        ArithOutcome::NotFound
    );
    backend
        .store(0, store("n", "10", StoreMode::Set))
        .await
        .unwrap();
    assert_eq!(
        backend.arith(0, &b("n"), mc(1, false)).await.unwrap(),
        ArithOutcome::Unsigned(9)
    );
    assert_eq!(
        backend.arith(0, &b("n"), mc(u64::MAX, true)).await.unwrap(),
        ArithOutcome::Unsigned(8)
    );
    assert_eq!(
        backend.arith(0, &b("n"), mc(100, false)).await.unwrap(),
        ArithOutcome::Unsigned(0)
    );
    if kind == "memcached" {
        // memcached counters are unsigned: a negative result is refused, not clamped.
        assert!(is_unsupported(
            backend.arith(0, &b("r"), Arith::Redis(-5)).await
        ));
        assert_eq!(
            backend.arith(0, &b("r"), Arith::Redis(5)).await.unwrap(),
            ArithOutcome::Signed(5)
        );
        assert_eq!(
            backend.arith(0, &b("r"), Arith::Redis(2)).await.unwrap(),
            ArithOutcome::Signed(7)
        );
    } else {
        assert_eq!(
            backend.arith(0, &b("r"), Arith::Redis(-5)).await.unwrap(),
            ArithOutcome::Signed(-5)
        );
        assert_eq!(
            backend.arith(0, &b("r"), Arith::Redis(i64::MIN)).await,
            Err(BackendError::Overflow)
        );
    }
    backend
        .store(0, store("s", "abc", StoreMode::Set))
        .await
        .unwrap();
    assert_eq!(
        backend.arith(0, &b("s"), mc(1, true)).await,
        Err(BackendError::NotANumber)
    );
    assert_eq!(
        backend.arith(0, &b("s"), Arith::Redis(1)).await,
        Err(BackendError::NotAnInteger)
    );
});

for_each_backend!(expiry_and_ttl, |kind, backend, guard| {
    // memcached keeps whole seconds (rounded up) and expires on its 1 s clock.
    let (granularity, settle) = if kind == "memcached" {
        (1000, 2200)
    } else {
        (0, 300)
    };
    // Servers expire on their own clocks; memory on the one its guard holds,
    // moved instead of waited for. (A reference: the guard must outlive the
    // wait, or the servers it keeps stop with it.)
    let guard = &guard;
    let settle = || async move {
        match guard.downcast_ref::<Clock>() {
            Some(clock) => clock.advance(std::time::Duration::from_millis(settle)),
            None => tokio::time::sleep(std::time::Duration::from_millis(settle)).await,
        }
    };
    let mut s = store("k", "v", StoreMode::Set);
    s.expiry = ExpiryUpdate::Set(Expiry::EXPIRED);
    backend.store(0, s).await.unwrap();
    assert_eq!(value(&backend, 0, "k").await, None);
    let mut s = store("k", "v", StoreMode::Set);
    s.expiry = ExpiryUpdate::Set(Expiry::At(now_ms() + 1500));
    backend.store(0, s).await.unwrap();
    let ttl = backend.ttl(0, &b("k")).await.unwrap();
    assert!(
        matches!(ttl, Ttl::Millis(ms) if ms > 1000 && ms <= 1500 + granularity),
        "{ttl:?}"
    );
    assert_eq!(backend.ttl(0, &b("nope")).await.unwrap(), Ttl::Missing);
    assert!(backend
        .expire(0, &b("k"), Expiry::Never, ExpireCondition::IfVolatile)
        .await
        .unwrap());
    assert_eq!(backend.ttl(0, &b("k")).await.unwrap(), Ttl::Persistent);
    assert!(!backend
        .expire(0, &b("k"), Expiry::Never, ExpireCondition::IfVolatile)
        .await
        .unwrap());
    let soon = Expiry::At(now_ms() + 200);
    assert!(!backend
        .expire(0, &b("k"), soon, ExpireCondition::IfLater)
        .await
        .unwrap());
    assert!(backend
        .expire(0, &b("k"), soon, ExpireCondition::IfEarlier)
        .await
        .unwrap());
    let touched = backend
        .get_and_touch(0, &[b("k")], Expiry::Never)
        .await
        .unwrap();
    assert_eq!(touched[0].as_ref().unwrap().expiry, Expiry::Never);
    assert!(backend
        .expire(
            0,
            &b("k"),
            Expiry::At(now_ms() + 150),
            ExpireCondition::Always
        )
        .await
        .unwrap());
    settle().await;
    assert_eq!(value(&backend, 0, "k").await, None);
});

for_each_backend!(databases_are_separate_namespaces, |kind, backend| {
    backend
        .store(0, store("k", "zero", StoreMode::Set))
        .await
        .unwrap();
    if kind == "redis-cluster" {
        // A Redis Cluster has database 0 only: others are refused, saying so.
        let refused = backend.store(1, store("k", "one", StoreMode::Set)).await;
        assert!(
            matches!(&refused, Err(BackendError::Unsupported(why)) if why.contains("only database 0")),
            "{refused:?}"
        );
        assert!(is_unsupported(backend.flush(Some(1)).await));
        assert_eq!(backend.len(0).await.unwrap(), 1);
        backend.flush(None).await.unwrap();
        assert_eq!(backend.len(0).await.unwrap(), 0);
        return;
    }
    backend
        .store(1, store("k", "one", StoreMode::Set))
        .await
        .unwrap();
    assert_eq!(value(&backend, 1, "k").await, Some(("one".into(), 0)));
    assert_eq!(value(&backend, 0, "k").await, Some(("zero".into(), 0)));
    if kind == "memcached" {
        assert!(is_unsupported(backend.len(0).await));
        assert!(is_unsupported(backend.flush(Some(1)).await));
        backend.flush(None).await.unwrap();
        assert_eq!(value(&backend, 1, "k").await, None);
        return;
    }
    assert_eq!(backend.len(0).await.unwrap(), 1);
    backend.flush(Some(1)).await.unwrap();
    assert_eq!(value(&backend, 1, "k").await, None);
    assert_eq!(value(&backend, 0, "k").await, Some(("zero".into(), 0)));
    backend.flush(None).await.unwrap();
    assert_eq!(backend.len(0).await.unwrap(), 0);
});

for_each_backend!(delete_getdel_and_msetnx, |kind, backend| {
    backend
        .store(0, store("a", "1", StoreMode::Set))
        .await
        .unwrap();
    assert_eq!(
        backend.delete(0, &[b("a"), b("b")]).await.unwrap(),
        vec![true, false]
    );
    backend
        .store(0, store("a", "1", StoreMode::Set))
        .await
        .unwrap();
    assert_eq!(
        backend
            .get_and_delete(0, &b("a"))
            .await
            .unwrap()
            .unwrap()
            .value,
        b("1")
    );
    assert_eq!(backend.get_and_delete(0, &b("a")).await.unwrap(), None);
    if kind == "memcached" {
        assert!(is_unsupported(
            backend.store_all_if_absent(0, vec![(b("x"), b("1"))]).await
        ));
        return;
    }
    // On a cluster, all-or-nothing only within one hash slot: the keys
    // share a hash tag there, and keys in several slots are refused.
    let key = |name: &str| {
        if kind == "redis-cluster" {
            b(&format!("{{t}}{name}"))
        } else {
            b(name)
        }
    };
    assert!(backend
        .store_all_if_absent(0, vec![(key("x"), b("1")), (key("y"), b("2"))])
        .await
        .unwrap());
    assert!(!backend
        .store_all_if_absent(0, vec![(key("z"), b("1")), (key("y"), b("2"))])
        .await
        .unwrap());
    assert_eq!(backend.get(0, &[key("z")]).await.unwrap(), vec![None]);
    if kind == "redis-cluster" {
        let refused = backend
            .store_all_if_absent(0, vec![(b("x"), b("1")), (b("y"), b("2"))])
            .await;
        assert!(
            matches!(&refused, Err(BackendError::Unsupported(why)) if why.starts_with("CROSSSLOT")),
            "{refused:?}"
        );
    }
});

for_each_backend!(scan_returns_every_key_once, |kind, backend| {
    if kind == "memcached" {
        assert!(is_unsupported(backend.scan(0, 0, None, 10).await));
        return;
    }
    for i in 0..500 {
        backend
            .store(0, store(&format!("key:{i}"), "v", StoreMode::Set))
            .await
            .unwrap();
    }
    if kind != "redis-cluster" {
        backend
            .store(2, store("key:other-db", "v", StoreMode::Set))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = backend.scan(0, cursor, Some(b"key:*"), 23).await.unwrap();
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 500);
});

for_each_backend!(
    concurrent_read_modify_writes_are_atomic,
    |_kind, backend| {
        backend
            .store(0, store("counter", "0", StoreMode::Set))
            .await
            .unwrap();
        backend
            .store(0, store("log", "", StoreMode::Set))
            .await
            .unwrap();
        let worker = || async {
            for _ in 0..25 {
                let incr = Arith::Memcache {
                    delta: 1,
                    incr: true,
                };
                backend.arith(0, &b("counter"), incr).await.unwrap();
                let outcome = backend
                    .store(0, store("log", "x", StoreMode::Append))
                    .await
                    .unwrap();
                assert_eq!(outcome.status, StoreStatus::Stored);
            }
        };
        tokio::join!(worker(), worker(), worker(), worker());
        assert_eq!(value(&backend, 0, "counter").await.unwrap().0, "100");
        assert_eq!(value(&backend, 0, "log").await.unwrap().0.len(), 100);
    }
);

#[tokio::test]
async fn memory_is_bounded_and_evicts() {
    let backend = MemoryBackend::new(2 * 1024 * 1024);
    let value = Bytes::from(vec![b'x'; 10_000]);
    for i in 0..1000 {
        let mut s = store(&format!("k{i}"), "", StoreMode::Set);
        s.value = value.clone();
        backend.store(0, s).await.unwrap();
    }
    let usage = backend.usage();
    assert!(usage.bytes <= 2 * 1024 * 1024, "{usage:?}");
    assert!(usage.evictions > 700, "{usage:?}");
    let mut huge = store("huge", "", StoreMode::Set);
    huge.value = Bytes::from(vec![0; 1_500_000]);
    assert_eq!(backend.store(0, huge).await, Err(BackendError::OutOfMemory));
}
