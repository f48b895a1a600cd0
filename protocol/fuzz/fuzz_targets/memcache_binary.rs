//! memcached binary request framing: never panics, always makes progress or
//! asks for more, and frames the same whether the input arrives whole or in
//! two reads (a refused body skipped across the split as well).
#![no_main]

use bytes::BytesMut;
use keyway_protocol::memcache::{BinaryDecoder, BinaryError};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    // A small body limit so that the skipping path is reached by short inputs.
    let mut decoder = BinaryDecoder::new(64);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => out.push(format!("{request:?}")),
                Ok(None) => break,
                Err(error @ BinaryError::BadMagic(_)) => {
                    out.push(format!("fatal {error:?}"));
                    return out;
                }
                Err(error) => {
                    assert!(buf.len() < before, "a refusal must consume the header");
                    out.push(format!("{error:?}"));
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = usize::from(split).min(rest.len());
    let whole = decode(&[rest]);
    let pieces = decode(&[&rest[..split], &rest[split..]]);
    assert_eq!(whole, pieces);
});
