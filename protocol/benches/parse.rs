//! Parser and encoder micro-benchmarks: the per-request work Keyway does
//! before and after touching a backend.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyway_protocol::{memcache, resp};

fn decode_all_memcache(input: &[u8]) -> usize {
    let mut decoder = memcache::Decoder::default();
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Ok(Some(request)) = decoder.decode(&mut buf) {
        black_box(request);
        n += 1;
    }
    n
}

fn decode_all_resp(input: &[u8]) -> usize {
    let mut decoder = resp::Decoder::default();
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Ok(Some(command)) = decoder.decode(&mut buf) {
        black_box(command);
        n += 1;
    }
    n
}

fn memcache_parsing(c: &mut Criterion) {
    let value = "x".repeat(256);
    let set = format!(
        "set :1:django.contrib.sessions.cacheabcdef0123456789 1 1209600 256\r\n{value}\r\n"
    );
    let get = ":1:django.contrib.sessions.cacheabcdef0123456789";
    let pipeline: Vec<u8> = (0..16).flat_map(|_| set.as_bytes().to_vec()).collect();
    let multiget = format!("get {}\r\n", vec![get; 100].join(" "));
    let mut group = c.benchmark_group("memcache");
    group.throughput(Throughput::Elements(16));
    group.bench_function("set x16 (256 B values)", |b| {
        b.iter(|| decode_all_memcache(black_box(&pipeline)))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("get 100 keys", |b| {
        b.iter(|| decode_all_memcache(black_box(multiget.as_bytes())))
    });
    group.finish();
}

fn resp_parsing(c: &mut Criterion) {
    let value = "x".repeat(256);
    let set = format!("*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$256\r\n{value}\r\n");
    let pipeline: Vec<u8> = (0..16).flat_map(|_| set.as_bytes().to_vec()).collect();
    let inline = b"SET key:000000000042 somevalue\r\n".repeat(16);
    let mut group = c.benchmark_group("resp");
    group.throughput(Throughput::Elements(16));
    group.bench_function("SET x16 multibulk (256 B values)", |b| {
        b.iter(|| decode_all_resp(black_box(&pipeline)))
    });
    group.bench_function("SET x16 inline", |b| {
        b.iter(|| decode_all_resp(black_box(&inline)))
    });
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let value = Bytes::from("x".repeat(256));
    let mut group = c.benchmark_group("encode");
    group.bench_function("RESP3 bulk 256 B", |b| {
        let reply = resp::Reply::Bulk(value.clone());
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.clear();
            resp::encode(black_box(&reply), resp::Version::Resp3, &mut buf);
        })
    });
    group.bench_function("memcache VALUE 256 B", |b| {
        let reply = memcache::Reply::Value {
            key: Bytes::from_static(b"key:42"),
            flags: 1,
            data: value.clone(),
            cas: None,
        };
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.clear();
            memcache::encode(black_box(&reply), &mut buf);
        })
    });
    group.finish();
}

criterion_group!(benches, memcache_parsing, resp_parsing, encoding);
criterion_main!(benches);
