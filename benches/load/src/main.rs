//! keyway-load: the load Horizon puts on its session store, over RESP.
//!
//! Each Horizon page view loads the user's session (a GET) and now and then
//! saves it (a SET with the session's TTL); a session pickles to 2-4 KiB.
//! So: many connections, one request in flight on each (Django's clients
//! do not pipeline), 9 reads to 1 write by default, values of 2-4 KiB, keys
//! shaped as Django's cache session engine names them, over a working set
//! that is written once before the timed run (so reads hit). Prints
//! throughput, hits, and latency percentiles from an HDR histogram.
//!
//! redis-benchmark cannot mix reads and writes in one run and memaslap does
//! not speak RESP, hence this tool. It runs on one thread, as
//! redis-benchmark does, so it takes one core of the machine it measures.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Clone)]
#[command(about = "Horizon's session load over RESP: GETs and SETs of 2-4 KiB values")]
struct Args {
    /// The server or proxy under load.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Length of the timed run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Sessions in the working set (written before the timed run).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Reads per write.
    #[arg(long, default_value_t = 9)]
    reads_per_write: u32,
    #[arg(long, default_value_t = 2048)]
    value_min: usize,
    #[arg(long, default_value_t = 4096)]
    value_max: usize,
    /// What precedes the 32-character session key (Django's cache session
    /// engine with the default KEY_PREFIX and VERSION).
    #[arg(long, default_value = ":1:django.contrib.sessions.cache")]
    prefix: String,
    /// The TTL each SET carries (EX); 0 for none. Default: Django's
    /// SESSION_COOKIE_AGE.
    #[arg(long, default_value_t = 1_209_600)]
    ttl: u64,
    /// Skip writing the working set first (it is there from a previous run).
    #[arg(long)]
    no_fill: bool,
    /// Printed at the start of the result line.
    #[arg(long, default_value = "load")]
    label: String,
}

/// What one connection saw.
struct Tally {
    gets: u64,
    sets: u64,
    misses: u64,
    errors: u64,
    first_error: Option<String>,
    latency_ns: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            gets: 0,
            sets: 0,
            misses: 0,
            errors: 0,
            first_error: None,
            // 1 µs to 10 s, 3 significant digits.
            latency_ns: Histogram::new_with_bounds(1_000, 10_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    fn add(&mut self, other: Tally) {
        self.gets += other.gets;
        self.sets += other.sets;
        self.misses += other.misses;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latency_ns
            .add(&other.latency_ns)
            .expect("histograms with the same bounds");
    }
}

/// One connection: writes a request, reads its whole reply, and again.
struct Connection {
    stream: TcpStream,
    request: BytesMut,
    reply: BytesMut,
}

impl Connection {
    async fn open(args: &Args) -> std::io::Result<Self> {
        let stream = TcpStream::connect((args.host.as_str(), args.port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            request: BytesMut::with_capacity(8192),
            reply: BytesMut::with_capacity(8192),
        })
    }

    /// Sends the command in `self.request` and returns its reply.
    async fn round_trip(&mut self) -> std::io::Result<BytesFrame> {
        self.stream.write_all(&self.request).await?;
        self.request.clear();
        loop {
            match decode_bytes_mut(&mut self.reply) {
                Ok(Some((frame, _, _))) => return Ok(frame),
                Ok(None) => {}
                Err(error) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{error:?}"),
                    ))
                }
            }
            self.reply.reserve(8192);
            if self.stream.read_buf(&mut self.reply).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u8(b'$');
    out.put_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn put_command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for arg in args {
        put_bulk(out, arg);
    }
}

/// Session key number `n`: 32 characters of [0-9a-f], spread so that
/// neighbouring numbers do not share a prefix.
fn key(prefix: &str, n: u64) -> Vec<u8> {
    let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{prefix}{mixed:016x}{n:016x}").into_bytes()
}

/// The bytes values are cut from: printable, like a pickle's mostly are.
fn value_source(len: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..len).map(|_| rng.gen_range(b' '..=b'~')).collect()
}

fn put_set(out: &mut BytesMut, key: &[u8], value: &[u8], ttl: &[u8]) {
    if ttl.is_empty() {
        put_command(out, &[b"SET", key, value]);
    } else {
        put_command(out, &[b"SET", key, value, b"EX", ttl]);
    }
}

/// Writes keys `first`, `first + step`, ... of the working set.
async fn fill(args: Args, first: u64, step: u64) -> std::io::Result<()> {
    let mut connection = Connection::open(&args).await?;
    let source = value_source(args.value_max);
    let ttl = ttl_arg(&args);
    let mut n = first;
    while n < args.keys {
        let len = args.value_min + (n as usize % (args.value_max - args.value_min + 1));
        put_set(
            &mut connection.request,
            &key(&args.prefix, n),
            &source[..len],
            &ttl,
        );
        if let BytesFrame::Error(error) = connection.round_trip().await? {
            return Err(std::io::Error::other(format!("filling: {error}")));
        }
        n += step;
    }
    Ok(())
}

fn ttl_arg(args: &Args) -> Vec<u8> {
    if args.ttl == 0 {
        Vec::new()
    } else {
        args.ttl.to_string().into_bytes()
    }
}

/// The timed run on one connection, until `deadline`.
async fn run(args: Args, seed: u64, deadline: Instant) -> std::io::Result<Tally> {
    let mut connection = Connection::open(&args).await?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let source = value_source(args.value_max + 64);
    let ttl = ttl_arg(&args);
    let mut tally = Tally::new();
    while Instant::now() < deadline {
        let key = key(&args.prefix, rng.gen_range(0..args.keys));
        let write = rng.gen_range(0..=args.reads_per_write) == 0;
        if write {
            let len = rng.gen_range(args.value_min..=args.value_max);
            let start = rng.gen_range(0..64);
            put_set(
                &mut connection.request,
                &key,
                &source[start..start + len],
                &ttl,
            );
        } else {
            put_command(&mut connection.request, &[b"GET", &key]);
        }
        let started = Instant::now();
        let reply = connection.round_trip().await?;
        let took = started.elapsed().as_nanos() as u64;
        tally.latency_ns.saturating_record(took.max(1_000));
        if write {
            tally.sets += 1;
        } else {
            tally.gets += 1;
        }
        match reply {
            BytesFrame::Null => tally.misses += 1,
            BytesFrame::Error(error) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| error.to_string());
            }
            _ => {}
        }
    }
    Ok(tally)
}

fn micros(ns: u64) -> String {
    format!("{:.0}", ns as f64 / 1_000.0)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    assert!(
        args.value_min <= args.value_max && args.keys > 0,
        "need value-min <= value-max and at least one key"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if !args.no_fill {
            let step = args.connections as u64;
            let fills: Vec<_> = (0..step)
                .map(|first| tokio::spawn(fill(args.clone(), first, step)))
                .collect();
            for fill in fills {
                fill.await.expect("fill task")?;
            }
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.seconds);
        let runs: Vec<_> = (0..args.connections as u64)
            .map(|seed| tokio::spawn(run(args.clone(), seed, deadline)))
            .collect();
        let mut total = Tally::new();
        for run in runs {
            total.add(run.await.expect("run task")?);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let requests = total.gets + total.sets;
        let latency = &total.latency_ns;
        println!(
            "{} requests {} per_second {:.0} gets {} sets {} misses {} errors {} p50_us {} p99_us {} p999_us {} max_us {}",
            args.label,
            requests,
            requests as f64 / elapsed,
            total.gets,
            total.sets,
            total.misses,
            total.errors,
            micros(latency.value_at_quantile(0.50)),
            micros(latency.value_at_quantile(0.99)),
            micros(latency.value_at_quantile(0.999)),
            micros(latency.max()),
        );
        if let Some(error) = total.first_error {
            eprintln!("{}: first error reply: {error}", args.label);
        }
        Ok(())
    })
}
