//! Django session reader: any value (pickle, JSON, msgpack, compressed or
//! not) and any key give an answer, never a panic, an unbounded allocation
//! or a hang; a value is never run.
#![no_main]

use keyway_protocol::django::{read_owner, session_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, value)) = data.split_first() else { return };
    let _ = read_owner(value, u32::from(flags & 9));
    let _ = session_key(value);
});
