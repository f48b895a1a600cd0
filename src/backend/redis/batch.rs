//! Whole RESP commands on their way to a redis route, and the encoding of
//! Keyway's own commands.

use bytes::{BufMut, Bytes, BytesMut};

/// The hash slot of a command sent to every node of a cluster.
pub(super) const EVERY_NODE: u16 = u16::MAX;

/// Whole RESP commands on their way to a redis route, each with the hash
/// slot of its keys (used by a Redis Cluster; 0 otherwise).
#[derive(Default)]
pub struct Batch {
    pub(super) bytes: BytesMut,
    pub(super) ends: Vec<usize>,
    pub(super) slots: Vec<u16>,
}

impl Batch {
    /// Adds one command as the client framed it.
    pub fn push_raw(&mut self, raw: &[u8], slot: u16) {
        self.bytes.extend_from_slice(raw);
        self.close(slot);
    }

    /// Adds a keyless command for every node (SCRIPT LOAD): the reply is the
    /// first node's error, else the last node's reply.
    pub fn push_for_every_node(&mut self, args: &[Bytes]) {
        self.push_args(args, EVERY_NODE);
    }

    /// Adds one command from its arguments.
    pub fn push_args(&mut self, args: &[Bytes], slot: u16) {
        let args: Vec<&[u8]> = args.iter().map(|arg| &arg[..]).collect();
        command(&mut self.bytes, &args);
        self.close(slot);
    }

    fn close(&mut self, slot: u16) {
        self.ends.push(self.bytes.len());
        self.slots.push(slot);
    }

    /// Commands in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empties the batch, returning what it held.
    pub fn take(&mut self) -> Batch {
        Batch {
            bytes: self.bytes.split(),
            ends: std::mem::take(&mut self.ends),
            slots: std::mem::take(&mut self.slots),
        }
    }
}

/// Appends one command as a RESP array of bulk strings.
pub(super) fn command(out: &mut BytesMut, args: &[&[u8]]) {
    // Room for all of it at once: grown piece by piece, a session write's
    // 2-4 KiB value was copied through several reallocations.
    let headers = 16 * (args.len() + 1);
    out.reserve(headers + args.iter().map(|arg| arg.len()).sum::<usize>());
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for arg in args {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}
