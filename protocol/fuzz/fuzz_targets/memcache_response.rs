//! Backend reply framer: never panics, respects the value limit, and decodes
//! the same whole or split in two.
#![no_main]

use bytes::BytesMut;
use keyway_protocol::memcache::decode_response;
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode_response(&mut buf, 1024) {
                Ok(Some(response)) => out.push(format!("{response:?}")),
                Ok(None) => break,
                Err(error) => {
                    // A broken backend stream is dropped, so stop here.
                    out.push(format!("error {error}"));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = usize::from(split).min(rest.len());
    assert_eq!(decode(&[rest]), decode(&[&rest[..split], &rest[split..]]));
});
