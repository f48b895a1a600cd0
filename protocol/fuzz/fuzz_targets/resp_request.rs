//! RESP request decoder: never panics, never allocates past its limits, and
//! decodes the same whether the input arrives whole or in two reads.
#![no_main]

use bytes::BytesMut;
use keyway_protocol::resp::{Decoder, Limits};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let limits = Limits { max_args: 64, max_bulk: 512, max_inline: 256 };
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => {
                    assert!(!command.raw.is_empty());
                    assert!(command.args.len() <= 64);
                    out.push(format!("{:?}", command.args));
                }
                Ok(None) => break,
                Err(error) => {
                    out.push(format!("fatal {error}"));
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
    let whole = decode(&[rest]);
    let pieces = decode(&[&rest[..split], &rest[split..]]);
    assert_eq!(whole, pieces);
});
