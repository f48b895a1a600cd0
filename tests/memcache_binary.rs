//! memcached's binary protocol against a real memcached: the same requests
//! give the same responses (opcode, status, key, extras, value; the CAS id
//! of a value read, by presence; the version string, by presence) from
//! memcached, from Keyway's memory route and from Keyway over a pool of
//! three memcached. Then what memcached cannot show here: SASL PLAIN against
//! `[[auth.users]]`, and a body over the item size limit.

mod common;

use std::net::SocketAddr;

use common::{exchange, memcached_pool_of_three, start_keyway, start_memcached, ONE_MEMORY_ROUTE};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const DECR: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const SETQ: u8 = 0x11;
const DELETEQ: u8 = 0x14;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATK: u8 = 0x23;
const SASL_LIST: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;

/// One request; `opaque` numbers it so that responses can be matched.
fn request(opcode: u8, opaque: u32, cas: u64, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80, opcode];
    out.extend((key.len() as u16).to_be_bytes());
    out.push(extras.len() as u8);
    out.extend([0, 0, 0]);
    out.extend(((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend(opaque.to_be_bytes());
    out.extend(cas.to_be_bytes());
    out.extend(extras);
    out.extend(key);
    out.extend(value);
    out
}

fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exptime.to_be_bytes()].concat()
}

fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    [
        &delta.to_be_bytes()[..],
        &initial.to_be_bytes(),
        &exptime.to_be_bytes(),
    ]
    .concat()
}

/// A response as compared: a read value's CAS by presence (a write's CAS,
/// which memcached sends and Keyway does not, is left out), VERSION's text
/// by presence.
#[derive(Debug, PartialEq)]
struct Response {
    opcode: u8,
    status: u16,
    opaque: u32,
    has_cas: bool,
    extras: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut all = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[0], 0x81, "response magic in {bytes:?}");
        let key_len = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
        let extras_len = bytes[4] as usize;
        let body = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let cas = u64::from_be_bytes(bytes[16..24].try_into().unwrap());
        let (extras, rest) = bytes[24..24 + body].split_at(extras_len);
        let (key, value) = rest.split_at(key_len);
        let opcode = bytes[1];
        all.push(Response {
            opcode,
            status: u16::from_be_bytes([bytes[6], bytes[7]]),
            opaque: u32::from_be_bytes(bytes[12..16].try_into().unwrap()),
            has_cas: cas != 0 && matches!(opcode, GET | GETK | GETKQ | GAT | GATK | TOUCH),
            extras: extras.to_vec(),
            key: key.to_vec(),
            value: if opcode == VERSION {
                b"<version>".to_vec()
            } else {
                value.to_vec()
            },
        });
        bytes = &bytes[24 + body..];
    }
    all
}

/// opcode, CAS, extras, key, value
type Step<'a> = (u8, u64, Vec<u8>, &'a [u8], &'a [u8]);

/// Every operation in its plain and quiet forms, hits and misses, on
/// counters, and the malformed requests memcached refuses.
fn script() -> Vec<u8> {
    let none: &[u8] = &[];
    let steps: Vec<Step> = vec![
        (GET, 0, vec![], b"k1", none),
        (GETK, 0, vec![], b"k1", none),
        (SET, 0, set_extras(5, 0), b"k1", b"hello"),
        (GET, 0, vec![], b"k1", none),
        (GETK, 0, vec![], b"k1", none),
        (ADD, 0, set_extras(0, 0), b"k1", b"x"),
        (ADD, 0, set_extras(7, 0), b"k2", b"two"),
        (REPLACE, 0, set_extras(0, 0), b"nope", b"x"),
        (REPLACE, 0, set_extras(8, 0), b"k2", b"TWO"),
        (APPEND, 0, vec![], b"k1", b"!"),
        (PREPEND, 0, vec![], b"k1", b">"),
        (APPEND, 0, vec![], b"nope", b"x"),
        (GET, 0, vec![], b"k1", none),
        (GET, 0, vec![], b"k2", none),
        (DELETE, 0, vec![], b"k2", none),
        (DELETE, 0, vec![], b"k2", none),
        (INCR, 0, arith_extras(1, 10, 0), b"n", none),
        (INCR, 0, arith_extras(5, 0, 0), b"n", none),
        (DECR, 0, arith_extras(20, 0, 0), b"n", none),
        (INCR, 0, arith_extras(1, 0, 0xffff_ffff), b"m", none),
        (INCR, 0, arith_extras(1, 0, 0), b"k1", none),
        (GET, 0, vec![], b"n", none),
        (TOUCH, 0, 100u32.to_be_bytes().to_vec(), b"k1", none),
        (TOUCH, 0, 100u32.to_be_bytes().to_vec(), b"nope", none),
        (GAT, 0, 100u32.to_be_bytes().to_vec(), b"k1", none),
        (GATK, 0, 100u32.to_be_bytes().to_vec(), b"nope", none),
        (GETQ, 0, vec![], b"nope", none),
        (GETKQ, 0, vec![], b"k1", none),
        (SETQ, 0, set_extras(0, 0), b"q", b"quiet"),
        (DELETEQ, 0, vec![], b"nope", none),
        (NOOP, 0, vec![], none, none),
        (GET, 0, vec![], b"q", none),
        (SET, 0x00ff_ffff_ffff, set_extras(0, 0), b"q", b"cas"),
        (SET, 0x00ff_ffff_ffff, set_extras(0, 0), b"nope", b"cas"),
        (0x50, 0, vec![], none, none),
        (VERSION, 0, vec![], none, none),
        (FLUSH, 0, vec![], none, none),
        (GET, 0, vec![], b"k1", none),
        (QUIT, 0, vec![], none, none),
    ];
    let mut out = Vec::new();
    for (opaque, (opcode, cas, extras, key, value)) in steps.into_iter().enumerate() {
        out.extend(request(opcode, opaque as u32, cas, &extras, key, value));
    }
    out
}

async fn run(addr: SocketAddr) -> Vec<Response> {
    responses(&exchange(addr, &script()).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_requests_get_memcacheds_own_responses_on_memory_and_on_a_pool() {
    let memcached = start_memcached();
    let want = run(memcached.addr).await;
    assert!(want.len() > 30, "{want:?}");

    let memory = start_keyway(ONE_MEMORY_ROUTE).await;
    let got = run(memory.memcache_addr.unwrap()).await;
    assert_eq!(got, want);

    // A pool of three, as deployments run memcached: the keys spread.
    let (_servers, config) = memcached_pool_of_three();
    let pool = start_keyway(&config).await;
    let got = run(pool.memcache_addr.unwrap()).await;
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_plain_authenticates_against_the_configured_users() {
    let keyway = start_keyway(&format!(
        "{ONE_MEMORY_ROUTE}\n[auth]\nmemcache = \"ascii\"\n[[auth.users]]\nname = \"app\"\npassword = \"s3cret\"\n"
    ))
    .await;
    let mut script = Vec::new();
    script.extend(request(GET, 1, 0, &[], b"k", &[]));
    script.extend(request(VERSION, 2, 0, &[], &[], &[]));
    script.extend(request(SASL_LIST, 3, 0, &[], &[], &[]));
    script.extend(request(SASL_AUTH, 4, 0, &[], b"PLAIN", b"\0app\0wrong"));
    script.extend(request(GET, 5, 0, &[], b"k", &[]));
    script.extend(request(SASL_AUTH, 6, 0, &[], b"PLAIN", b"\0app\0s3cret"));
    script.extend(request(SET, 7, 0, &set_extras(0, 0), b"k", b"v"));
    script.extend(request(GET, 8, 0, &[], b"k", &[]));
    script.extend(request(QUIT, 9, 0, &[], &[], &[]));
    let got = responses(&exchange(keyway.memcache_addr.unwrap(), &script).await);
    let statuses: Vec<(u32, u16)> = got.iter().map(|r| (r.opaque, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (1, 0x20),
            (2, 0),
            (3, 0),
            (4, 0x20),
            (5, 0x20),
            (6, 0),
            (7, 0),
            (8, 0),
            (9, 0)
        ]
    );
    assert_eq!(got[2].value, b"PLAIN");
    // Before authenticating, a body over what SASL needs is refused unread.
    let mut big = request(SET, 1, 0, &set_extras(0, 0), b"k", &vec![b'x'; 100_000]);
    big.extend(request(QUIT, 2, 0, &[], &[], &[]));
    let refused = responses(&exchange(keyway.memcache_addr.unwrap(), &big).await);
    let statuses: Vec<u16> = refused.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0x03, 0]);
    // ... and changes nothing: memcached drops an authenticated client's
    // old value on a too-large set, but this client has no right to.
    let mut check = request(SASL_AUTH, 1, 0, &[], b"PLAIN", b"\0app\0s3cret");
    check.extend(request(GET, 2, 0, &[], b"k", &[]));
    check.extend(request(QUIT, 3, 0, &[], &[], &[]));
    let after = responses(&exchange(keyway.memcache_addr.unwrap(), &check).await);
    assert_eq!((after[1].status, &after[1].value[..]), (0, &b"v"[..]));
    assert_eq!(got[5].value, b"Authenticated");
    assert_eq!(got[7].value, b"v");
    assert_eq!(keyway.current().stats.auth_failures.get(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_over_the_item_size_is_refused_the_old_one_dropped_and_the_connection_goes_on() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let big = vec![b'x'; 2 * 1024 * 1024];
    let mut script = Vec::new();
    script.extend(request(SET, 1, 0, &set_extras(0, 0), b"k", b"old"));
    script.extend(request(SET, 2, 0, &set_extras(0, 0), b"k", &big));
    script.extend(request(GET, 3, 0, &[], b"k", &[]));
    script.extend(request(QUIT, 4, 0, &[], &[], &[]));
    let want = responses(&exchange(memcached.addr, &script).await);
    let got = responses(&exchange(keyway.memcache_addr.unwrap(), &script).await);
    assert_eq!(got, want);
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 0x03, 0x01, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_request_is_answered_invalid_arguments_and_the_connection_closed() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    for malformed in [
        request(SET, 1, 0, &[1, 2, 3], b"k", b"bad extras"),
        request(GET, 1, 0, &[], &[], &[]),
        request(INCR, 1, 0, &arith_extras(1, 0, 0), b"n", b"a value"),
        request(GET, 1, 0, &[], &[b'k'; 251], &[]),
    ] {
        let mut script = malformed;
        script.extend(request(NOOP, 2, 0, &[], &[], &[]));
        let want = responses(&exchange(memcached.addr, &script).await);
        let got = responses(&exchange(keyway.memcache_addr.unwrap(), &script).await);
        assert_eq!(got, want);
        assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [0x04]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_line_after_binary_requests_closes_the_connection_as_on_memcached() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let mut script = request(NOOP, 1, 0, &[], &[], &[]);
    script.extend(b"get k aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    let want = exchange(memcached.addr, &script).await;
    let got = exchange(keyway.memcache_addr.unwrap(), &script).await;
    assert_eq!(responses(&got), responses(&want));
    assert_eq!(responses(&got).len(), 1);
}
