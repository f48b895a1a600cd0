//! redis reply framer and parser (both versions): never panic, and give the
//! same replies whole or split in two. (A framed reply may still fail to
//! parse, e.g. an error line that is not UTF-8; callers then pass the raw
//! bytes on or report the error.)
#![no_main]

use bytes::BytesMut;
use keyway_protocol::resp::{frame_backend_reply, parse_backend_reply, Version};
use libfuzzer_sys::fuzz_target;

fn decode(chunks: &[&[u8]], version: Version) -> Vec<String> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match frame_backend_reply(&mut buf, 1 << 16, version) {
                Ok(Some(raw)) => {
                    let reply = parse_backend_reply(&raw, version);
                    out.push(format!("{raw:?} {reply:?}"));
                }
                Ok(None) => break,
                Err(_) => {
                    // A broken backend stream is dropped, so stop here. (The
                    // decoder's message quotes the bytes it had, so compare
                    // the verdict, not the text.)
                    out.push("error".into());
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let version = if split & 1 == 0 { Version::Resp2 } else { Version::Resp3 };
    let split = usize::from(split >> 1).min(rest.len());
    assert_eq!(
        decode(&[rest], version),
        decode(&[&rest[..split], &rest[split..]], version)
    );
});
