//! memcached request decoder: never panics, always makes progress or asks for
//! more, and decodes the same whether the input arrives whole or in two reads.
#![no_main]

use bytes::BytesMut;
use keyway_protocol::memcache::{Decoder, Limits};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    // Small limits so that the limit paths are reached by short inputs.
    let limits = Limits { max_key_length: 250, max_line: 64, max_get_line: 512, max_item_size: 1024 };
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => out.push(format!("{request:?}")),
                Ok(None) => break,
                Err(error) if error.is_fatal() => {
                    out.push(format!("fatal {error}"));
                    return out;
                }
                Err(error) => {
                    assert!(buf.len() < before, "an error must consume the bad input");
                    out.push(format!("{error}"));
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
