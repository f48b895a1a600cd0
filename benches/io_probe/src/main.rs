//! keyway-io-probe: what io_uring would change on Horizon's load, measured
//! before deciding whether Keyway should use it (issue 28).
//!
//! One minimal RESP server (GET and SET of whole values in a hash map, one
//! thread), with its I/O done two ways: tokio over epoll (readiness, then a
//! `recvfrom` and a `sendto` per request, as Keyway does) and tokio-uring
//! over io_uring (completions: the reads and writes of every connection
//! submitted together, one `io_uring_enter` per turn of the loop). The work
//! between the I/O is the same code, so the difference in CPU per request
//! under `keyway-load` is what io_uring changes in the I/O itself.
//! benches/io_uring.sh runs both and prints the figures.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum Io {
    /// tokio's current-thread runtime: epoll readiness, read/write syscalls.
    Epoll,
    /// tokio-uring: completion-based reads and writes through io_uring.
    Uring,
}

#[derive(Parser)]
#[command(about = "A minimal GET/SET server over epoll or io_uring, for keyway-load")]
struct Args {
    #[arg(long, value_enum)]
    io: Io,
    #[arg(long, default_value = "127.0.0.1:6390")]
    listen: SocketAddr,
}

type Store = Rc<RefCell<HashMap<Vec<u8>, Vec<u8>>>>;

/// Answers every complete command at the front of `input` into `output`;
/// returns how many bytes of `input` they took.
fn answer(store: &Store, input: &[u8], output: &mut Vec<u8>) -> usize {
    let mut taken = 0;
    while let Some((args, used)) = command(&input[taken..]) {
        let args: Vec<&[u8]> = args.iter().map(|r| &input[taken..][r.clone()]).collect();
        taken += used;
        match args
            .first()
            .map(|name| name.to_ascii_uppercase())
            .as_deref()
        {
            Some(b"GET") if args.len() == 2 => match store.borrow().get(args[1]) {
                Some(value) => {
                    output.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
                    output.extend_from_slice(value);
                    output.extend_from_slice(b"\r\n");
                }
                None => output.extend_from_slice(b"$-1\r\n"),
            },
            Some(b"SET") if args.len() >= 3 => {
                store
                    .borrow_mut()
                    .insert(args[1].to_vec(), args[2].to_vec());
                output.extend_from_slice(b"+OK\r\n");
            }
            _ => output.extend_from_slice(b"-ERR only GET and SET here\r\n"),
        }
    }
    taken
}

/// One RESP array of bulk strings at the front of `input`: its arguments'
/// ranges and its length, or `None` until all of it has arrived.
fn command(input: &[u8]) -> Option<(Vec<std::ops::Range<usize>>, usize)> {
    fn line(input: &[u8], at: usize, mark: u8) -> Option<(usize, usize)> {
        if *input.get(at)? != mark {
            return None;
        }
        let end = at + input[at..].windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&input[at + 1..end])
            .ok()?
            .parse()
            .ok()?;
        Some((n, end + 2))
    }
    let (count, mut at) = line(input, 0, b'*')?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, start) = line(input, at, b'$')?;
        if input.len() < start + len + 2 {
            return None;
        }
        args.push(start..start + len);
        at = start + len + 2;
    }
    Some((args, at))
}

const CHUNK: usize = 16 * 1024;

async fn serve_epoll(listen: SocketAddr) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let store = Store::default();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            loop {
                let (mut stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let store = store.clone();
                tokio::task::spawn_local(async move {
                    let mut input = Vec::with_capacity(CHUNK);
                    let mut output = Vec::with_capacity(CHUNK);
                    loop {
                        match stream.read_buf(&mut input).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let taken = answer(&store, &input, &mut output);
                        input.drain(..taken);
                        if stream.write_all(&output).await.is_err() {
                            return;
                        }
                        output.clear();
                    }
                });
            }
        })
        .await
}

#[cfg(target_os = "linux")]
fn serve_uring(listen: SocketAddr) -> std::io::Result<()> {
    use tokio_uring::buf::BoundedBuf;
    tokio_uring::start(async move {
        let listener = tokio_uring::net::TcpListener::bind(listen)?;
        let store = Store::default();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let store = store.clone();
            tokio_uring::spawn(async move {
                let mut input = Vec::with_capacity(CHUNK);
                let mut output = Vec::with_capacity(CHUNK);
                loop {
                    if input.capacity() - input.len() < CHUNK / 4 {
                        input.reserve(CHUNK);
                    }
                    // Read after what is there (a request may come in parts).
                    let start = input.len();
                    let end = input.capacity();
                    let (read, slice) = stream.read(input.slice(start..end)).await;
                    input = slice.into_inner();
                    match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let taken = answer(&store, &input, &mut output);
                    input.drain(..taken);
                    let (written, buf) = stream.write_all(output).await;
                    output = buf;
                    if written.is_err() {
                        return;
                    }
                    output.clear();
                }
            });
        }
    })
}

#[cfg(not(target_os = "linux"))]
fn serve_uring(_: SocketAddr) -> std::io::Result<()> {
    Err(std::io::Error::other("io_uring is Linux's"))
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    match args.io {
        Io::Epoll => tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?
            .block_on(serve_epoll(args.listen)),
        Io::Uring => serve_uring(args.listen),
    }
}
