use super::*;
use proptest::prelude::*;

fn args(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, DecodeError> {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(command) = decoder.decode(&mut buf)? {
        out.push(command.args.iter().map(|a| a.to_vec()).collect());
    }
    Ok(out)
}

fn words(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_and_inline() {
    assert_eq!(
        args(b"*2\r\n$3\r\nGET\r\n$5\r\na\r\nb\r\r\n"),
        Ok(vec![words(&["GET", "a\r\nb\r"])])
    );
    assert_eq!(
        args(b"PING\r\nSET a 1\n"),
        Ok(vec![words(&["PING"]), words(&["SET", "a", "1"])])
    );
    assert_eq!(
        args(b"SET \"a b\\x41\\n\" 'it\\'s'\r\n"),
        Ok(vec![words(&["SET", "a bA\n", "it's"])])
    );
    assert_eq!(
        args(b"*0\r\n*-1\r\n\r\n   \r\nPING\r\n"),
        Ok(vec![words(&["PING"])])
    );
    assert_eq!(args(b"*1\r\n$0\r\n\r\n"), Ok(vec![words(&[""])]));
}

/// redis 7.0.15's own answers (GET after an inline SET) to quotes opened in
/// the middle of an argument, signed and short hex escapes, and a lone
/// backslash in single quotes.
#[test]
fn inline_arguments_split_as_redis_splits_them() {
    let table: &[(&[u8], &str)] = &[
        (b"SET k a\"b c\"\r\n", "ab c"),
        (b"SET k \"\\x+1\"\r\n", "x+1"),
        (b"SET k a'b'\r\n", "ab"),
        (b"SET k 'x\\y'\r\n", "x\\y"),
        (b"SET k \"\\x4\"\r\n", "x4"),
        (b"SET k \"\\x41\\t\"\r\n", "A\t"),
    ];
    for (line, value) in table {
        assert_eq!(
            args(line),
            Ok(vec![words(&["SET", "k", value])]),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    for line in [
        &b"SET k ab\"c\r\n"[..],
        b"SET k 'a\r\n",
        b"SET k \"a\\\"\r\n",
    ] {
        assert_eq!(args(line), Err(DecodeError::UnbalancedQuotes), "{line:?}");
    }
    // Arguments without quotes stay slices of the request.
    let mut buf = BytesMut::from(&b"SET key value\r\n"[..]);
    let command = Decoder::default().decode(&mut buf).unwrap().unwrap();
    assert_eq!(command.args[1].as_ptr(), command.raw[4..].as_ptr());
}

#[test]
fn raw_is_the_exact_request() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\nECHO x\r\n"[..]);
    assert_eq!(
        &decoder.decode(&mut buf).unwrap().unwrap().raw[..],
        b"*1\r\n$4\r\nPING\r\n"
    );
    assert_eq!(
        &decoder.decode(&mut buf).unwrap().unwrap().raw[..],
        b"ECHO x\r\n"
    );
}

#[test]
fn protocol_errors_match_redis() {
    let table: Vec<(&[u8], DecodeError)> = vec![
        (b"*x\r\n", DecodeError::InvalidMultibulkLength),
        (b"*2000000\r\n", DecodeError::InvalidMultibulkLength),
        (b"*1\r\n+OK\r\n", DecodeError::ExpectedBulk(b'+')),
        (b"*1\r\n$-1\r\n", DecodeError::InvalidBulkLength),
        (b"*1\r\n$999999999999\r\n", DecodeError::InvalidBulkLength),
        (b"*1\r\n$01\r\nx\r\n", DecodeError::InvalidBulkLength),
        (b"SET \"a\r\n", DecodeError::UnbalancedQuotes),
        (b"SET \"a\"b\r\n", DecodeError::UnbalancedQuotes),
    ];
    for (input, want) in table {
        assert_eq!(
            args(input),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        DecodeError::ExpectedBulk(b'+').to_string(),
        "Protocol error: expected '$', got '+'"
    );
}

#[test]
fn limits_refuse_before_allocating() {
    let mut decoder = Decoder::new(Limits {
        max_args: 4,
        max_bulk: 10,
        max_inline: 100,
    });
    let mut buf = BytesMut::from(&b"*5\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::InvalidMultibulkLength)
    );
    let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::InvalidBulkLength)
    );
    let mut buf = BytesMut::from(&[b'a'; 101][..]);
    assert_eq!(decoder.decode(&mut buf), Err(DecodeError::TooBigInline));
    // A nesting bomb is just a bad header to a flat parser.
    let mut buf = BytesMut::from(&b"*1\r\n".repeat(10_000)[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::ExpectedBulk(b'*'))
    );
}

const STREAM: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$7\r\na\r\n*1\r\nb\r\nPING\r\n\
*2\r\n$3\r\nGET\r\n$1\r\nk\r\nset \"x y\" 'z'\r\n*0\r\n*1\r\n$4\r\nQUIT\r\n";

proptest! {
    #[test]
    fn split_anywhere_decodes_the_same(split in 0..STREAM.len()) {
        let whole = args(STREAM).unwrap();
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&STREAM[..split]);
        let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
        for chunk in [&STREAM[split..], &b""[..]] {
            while let Some(command) = decoder.decode(&mut buf).unwrap() {
                got.push(command.args.iter().map(|a| a.to_vec()).collect());
            }
            buf.extend_from_slice(chunk);
        }
        prop_assert_eq!(got, whole);
    }
}

#[test]
fn byte_at_a_time_decodes_the_same() {
    let whole = args(STREAM).unwrap();
    assert_eq!(whole.len(), 5);
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
    for &byte in STREAM {
        buf.extend_from_slice(&[byte]);
        while let Some(command) = decoder.decode(&mut buf).unwrap() {
            got.push(command.args.iter().map(|a| a.to_vec()).collect());
        }
    }
    assert_eq!(got, whole);
}

#[test]
fn before_authentication_redis_limits_apply_as_soon_as_the_header_arrives() {
    let mut decoder = Decoder::default();
    decoder.set_unauthenticated(true);
    // The header alone is enough: nothing of the promised body is awaited.
    let mut buf = BytesMut::from(&b"*100000\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::UnauthenticatedMultibulkLength)
    );
    let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000000\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::UnauthenticatedBulkLength)
    );
    assert_eq!(
        DecodeError::UnauthenticatedBulkLength.to_string(),
        "Protocol error: unauthenticated bulk length"
    );
    // At the limits: decoded.
    let ten = b"*10\r\n$4\r\nAUTH\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n";
    assert!(decoder
        .decode(&mut BytesMut::from(&ten[..]))
        .unwrap()
        .is_some());
    let mut big = b"*2\r\n$4\r\nAUTH\r\n$16384\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'p', 16384));
    big.extend_from_slice(b"\r\n");
    assert!(decoder
        .decode(&mut BytesMut::from(&big[..]))
        .unwrap()
        .is_some());
    // Once authenticated, the configured limits.
    decoder.set_unauthenticated(false);
    let mut buf = BytesMut::from(&b"*100000\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}
