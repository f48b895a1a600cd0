use super::*;
use proptest::prelude::*;

fn decode_all(input: &[u8]) -> Vec<Result<Request, DecodeError>> {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(request)) => out.push(Ok(request)),
            Ok(None) => break,
            Err(error) => {
                let fatal = error.is_fatal();
                out.push(Err(error));
                if fatal {
                    break;
                }
            }
        }
    }
    out
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn one(input: &str) -> Result<Request, DecodeError> {
    let mut all = decode_all(input.as_bytes());
    assert_eq!(all.len(), 1, "{input:?} gave {all:?}");
    all.remove(0)
}

#[test]
fn retrieval_commands() {
    assert_eq!(
        one("get a bb\r\n"),
        Ok(Request::Get {
            keys: vec![b("a"), b("bb")],
            with_cas: false
        })
    );
    assert_eq!(
        one("gets  a \n"),
        Ok(Request::Get {
            keys: vec![b("a")],
            with_cas: true
        })
    );
    assert_eq!(
        one("gat 4294967295 k\r\n"),
        Ok(Request::GetAndTouch {
            exptime: -1,
            keys: vec![b("k")],
            with_cas: false
        })
    );
    assert_eq!(one("get\r\n"), Err(DecodeError::UnknownCommand));
    assert_eq!(
        one("gat x k\r\n"),
        Err(DecodeError::Client("invalid exptime argument"))
    );
    let long_key = format!("get {}\r\n", "k".repeat(251));
    assert_eq!(
        one(&long_key),
        Err(DecodeError::Client("bad command line format"))
    );
}

#[test]
fn storage_commands_frame_data_by_length() {
    assert_eq!(
        one("set k 16 0 8\r\na\r\nEND\r\n\r\n"),
        Ok(Request::Store {
            command: StoreCommand::Set,
            key: b("k"),
            flags: 16,
            exptime: 0,
            data: b("a\r\nEND\r\n"),
            cas_unique: 0,
            noreply: false,
        })
    );
    assert_eq!(
        one("cas k 1 -1 0 99 noreply\r\n\r\n"),
        Ok(Request::Store {
            command: StoreCommand::Cas,
            key: b("k"),
            flags: 1,
            exptime: -1,
            data: Bytes::new(),
            cas_unique: 99,
            noreply: true,
        })
    );
}

#[test]
fn storage_errors_match_memcached() {
    // The block is exactly 1 + 2 bytes ("ab\r"); the leftover "\n" is an empty line.
    assert_eq!(
        decode_all(b"set k 0 0 1\r\nab\r\n"),
        vec![
            Err(DecodeError::BadDataChunk { noreply: false }),
            Err(DecodeError::UnknownCommand)
        ]
    );
    assert_eq!(one("set k\r\n"), Err(DecodeError::UnknownCommand));
    assert_eq!(
        one("set k -1 0 1\r\n"),
        Err(DecodeError::Client("bad command line format"))
    );
    assert_eq!(
        one("set k 0 0 -1\r\n"),
        Err(DecodeError::Client("bad command line format"))
    );
    // Not swallowed: like memcached, the data line is then read as a command.
    assert_eq!(
        decode_all(b"set k 0 0 -1\r\nx\r\n"),
        vec![
            Err(DecodeError::Client("bad command line format")),
            Err(DecodeError::UnknownCommand)
        ]
    );
}

#[test]
fn too_large_values_are_swallowed_then_decoding_continues() {
    let mut decoder = Decoder::new(Limits {
        max_item_size: 100,
        ..Limits::default()
    });
    let mut buf = BytesMut::from(&b"set k 0 0 60\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Request::TooLarge {
            command: StoreCommand::Set,
            key: b("k"),
            noreply: false
        }))
    );
    buf.extend_from_slice(&[b'x'; 30]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&[b'x'; 30]);
    buf.extend_from_slice(b"\r\nversion\r\n");
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Request::Version)));
}

#[test]
fn other_commands() {
    let k = b("k");
    let table: Vec<(&str, Result<Request, DecodeError>)> = vec![
        (
            "delete k\r\n",
            Ok(Request::Delete {
                key: k.clone(),
                noreply: false,
            }),
        ),
        (
            "delete k 0 noreply\r\n",
            Ok(Request::Delete {
                key: k.clone(),
                noreply: true,
            }),
        ),
        (
            "delete k 5\r\n",
            Err(DecodeError::Client(
                "bad command line format.  Usage: delete <key> [noreply]",
            )),
        ),
        (
            "incr k 18446744073709551615\r\n",
            Ok(Request::Arith {
                key: k.clone(),
                delta: u64::MAX,
                incr: true,
                noreply: false,
            }),
        ),
        (
            "decr k -1\r\n",
            Err(DecodeError::Client("invalid numeric delta argument")),
        ),
        (
            "touch k 10 noreply\r\n",
            Ok(Request::Touch {
                key: k.clone(),
                exptime: 10,
                noreply: true,
            }),
        ),
        (
            "flush_all\r\n",
            Ok(Request::FlushAll {
                delay: 0,
                noreply: false,
            }),
        ),
        (
            "flush_all \r\n",
            Ok(Request::FlushAll {
                delay: 0,
                noreply: false,
            }),
        ),
        (
            "flush_all 0\r\n",
            Ok(Request::FlushAll {
                delay: 0,
                noreply: false,
            }),
        ),
        (
            "flush_all noreply\r\n",
            Ok(Request::FlushAll {
                delay: 0,
                noreply: true,
            }),
        ),
        (
            "flush_all x\r\n",
            Err(DecodeError::Client("invalid exptime argument")),
        ),
        ("version\r\n", Ok(Request::Version)),
        ("verbosity 1\r\n", Ok(Request::Verbosity { noreply: false })),
        (
            "stats items\r\n",
            Ok(Request::Stats {
                args: vec![b("items")],
            }),
        ),
        ("quit\r\n", Ok(Request::Quit)),
        // As memcached 1.6.18 answers (tests/differential.rs compares them).
        ("quit now\r\n", Ok(Request::Quit)),
        ("version foo bar\r\n", Ok(Request::Version)),
        ("mn\r\n", Ok(Request::MetaNoOp)),
        ("shutdown graceful\r\n", Ok(Request::Shutdown)),
        (
            "gat 10\r\n",
            Ok(Request::GetAndTouch {
                exptime: 10,
                keys: vec![],
                with_cas: false,
            }),
        ),
        (
            "verbosity x\r\n",
            Err(DecodeError::Client("bad command line format")),
        ),
        ("verbosity x noreply\r\n", Err(DecodeError::Silenced)),
        ("incr k x noreply\r\n", Err(DecodeError::Silenced)),
        ("delete k 1 noreply\r\n", Err(DecodeError::Silenced)),
        (
            "cache_memlimit 100\r\n",
            Ok(Request::CacheMemlimit {
                megabytes: 100,
                noreply: false,
            }),
        ),
        ("cache_memlimit x\r\n", Err(DecodeError::UnknownCommand)),
        ("\r\n", Err(DecodeError::UnknownCommand)),
        ("bogus\r\n", Err(DecodeError::UnknownCommand)),
    ];
    for (input, want) in table {
        assert_eq!(one(input), want, "{input:?}");
    }
}

#[test]
fn long_lines() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&[b'x'; 3000][..]);
    assert_eq!(decoder.decode(&mut buf), Err(DecodeError::LineTooLong));
    let keys: Vec<String> = (0..500).map(|i| format!("key{i:04}")).collect();
    let line = format!("get {}\r\n", keys.join(" "));
    assert!(line.len() > 2048);
    match one(&line) {
        Ok(Request::Get { keys, .. }) => assert_eq!(keys.len(), 500),
        other => panic!("{other:?}"),
    }
}

const STREAM: &[u8] = b"set a 0 0 5\r\nhello\r\nget a b\r\nset b 2 100 8\r\na\r\nEND\r\n\r\n\
gets b\r\nincr n 5\r\ndelete a noreply\r\nbogus\r\nset c 0 0 1\r\nxy\r\ntouch b 0\r\n\
cas b 0 0 3 7\r\nabc\r\nflush_all \r\nversion\r\n";

proptest! {
    /// Any valid stream split at any point into two reads decodes the same.
    #[test]
    fn split_anywhere_decodes_the_same(split in 0..STREAM.len()) {
        let whole = decode_all(STREAM);
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&STREAM[..split]);
        let mut got = Vec::new();
        for chunk in [&STREAM[split..], &b""[..]] {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(request)) => got.push(Ok(request)),
                    Ok(None) => break,
                    Err(error) => got.push(Err(error)),
                }
            }
            buf.extend_from_slice(chunk);
        }
        prop_assert_eq!(got, whole);
    }
}

#[test]
fn byte_at_a_time_decodes_the_same() {
    let whole = decode_all(STREAM);
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &byte in STREAM {
        buf.extend_from_slice(&[byte]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => got.push(Ok(request)),
                Ok(None) => break,
                Err(error) => got.push(Err(error)),
            }
        }
    }
    assert_eq!(got, whole);
    assert_eq!(whole.len(), 13);
}

#[test]
fn line_length_verdict_does_not_depend_on_how_bytes_arrive() {
    // Found by the memcache_request fuzz target: 64 bytes of line and "\r\n",
    // with the cap at 64, split after the 65th byte.
    let limits = Limits {
        max_line: 64,
        ..Limits::default()
    };
    let input = [vec![b'A'; 64], b"\r\n".to_vec()].concat();
    let mut whole = Decoder::new(limits.clone());
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(whole.decode(&mut buf), Err(DecodeError::UnknownCommand));
    let mut split = Decoder::new(limits);
    let mut buf = BytesMut::from(&input[..65]);
    assert_eq!(split.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&input[65..]);
    assert_eq!(split.decode(&mut buf), Err(DecodeError::UnknownCommand));
    let mut buf = BytesMut::from(&[b'A'; 66][..]);
    assert_eq!(
        Decoder::new(Limits {
            max_line: 64,
            ..Limits::default()
        })
        .decode(&mut buf),
        Err(DecodeError::LineTooLong)
    );
}

#[test]
fn blank_and_leading_space_lines_get_the_same_verdict_whole_or_split() {
    // Found by the memcache_request fuzz target: spaces, then (maybe) a get.
    let limits = Limits {
        max_line: 64,
        max_get_line: 512,
        ..Limits::default()
    };
    for input in [
        [vec![b' '; 80], b"\r\n".to_vec()].concat(),
        [vec![b' '; 80], b"gets a b\r\n".to_vec()].concat(),
        [vec![b' '; 80], b"set\r\n".to_vec()].concat(),
    ] {
        let mut whole = Decoder::new(limits.clone());
        let want = whole.decode(&mut BytesMut::from(&input[..]));
        for split in 1..input.len() {
            let mut decoder = Decoder::new(limits.clone());
            let mut buf = BytesMut::from(&input[..split]);
            let got = match decoder.decode(&mut buf) {
                Ok(None) => {
                    buf.extend_from_slice(&input[split..]);
                    decoder.decode(&mut buf)
                }
                verdict => verdict,
            };
            assert_eq!(
                got,
                want,
                "split at {split} of {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn raw_bytes_are_each_request_as_it_came() {
    let input = b"set k 5 0 3 noreply\r\nabc\r\nget a  b\nversion\r\nset big 0 0 2000000\r\n";
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&input[..]);
    let mut raws = Vec::new();
    while let Ok(Some((_, raw))) = decoder.decode_raw(&mut buf) {
        raws.push(raw);
    }
    assert_eq!(
        raws,
        [
            b("set k 5 0 3 noreply\r\nabc\r\n"),
            b("get a  b\n"),
            b("version\r\n"),
            // Too large: the line alone, its block is being discarded.
            b("set big 0 0 2000000\r\n"),
        ]
    );
}
