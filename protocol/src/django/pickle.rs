//! Reads the top-level dict of a pickle without running it: every opcode
//! of protocols 0 to 5 (Python's `pickletools` documents them) is walked
//! on a stack of symbolic values. Strings and integers are kept (short
//! ones); dicts are tracked, so `SETITEM(S)` on the session dict is seen
//! wherever it happens (pickle builds a dict, memoizes it, and fills it
//! later); everything else — classes, instances, lists, `REDUCE` — is an
//! opaque value that is never built. A class Keyway cannot know (Horizon's
//! `openstack_auth.user.Token`) is therefore just an opaque value beside
//! the key that matters.
//!
//! Bounded by its input: every opcode consumes at least one byte and pushes
//! at most one value, so the stack and the memo are no larger than the
//! pickle; strings longer than [`MAX_TEXT`] are not kept.

use std::collections::HashMap;

/// Longest string kept as text: a user id is far shorter.
pub const MAX_TEXT: usize = 256;

/// A value on the unpickler's stack, as far as this reader needs it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Int(i64),
    /// A dict: its index in [`Walker::dicts`].
    Dict(usize),
    Mark,
    /// Anything else: built by code Keyway does not run.
    Opaque,
}

/// Why a pickle could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error("pickle ends before STOP")]
    Truncated,
    #[error("unknown pickle opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    #[error("pickle stack underflow")]
    Underflow,
    #[error("malformed pickle argument")]
    BadArgument,
}

/// A top-level dict's keys that were strings, with the values that were
/// strings or integers (as text); other entries are left out.
pub type TopLevel = Vec<(String, String)>;

/// The dict a pickle ends with, or `None` if its result is not a dict.
pub fn top_level_dict(pickle: &[u8]) -> Result<Option<TopLevel>, PickleError> {
    let mut walker = Walker {
        input: pickle,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        dicts: Vec::new(),
    };
    let result = walker.run()?;
    Ok(match result {
        Value::Dict(index) => Some(std::mem::take(&mut walker.dicts[index])),
        _ => None,
    })
}

struct Walker<'a> {
    input: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
    /// Every dict built so far, with its readable entries.
    dicts: Vec<TopLevel>,
}

impl Walker<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.at.checked_add(n).ok_or(PickleError::Truncated)?;
        let bytes = self.input.get(self.at..end).ok_or(PickleError::Truncated)?;
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A length argument: `n` little-endian bytes, within what is left.
    fn length(&mut self, n: usize) -> Result<usize, PickleError> {
        let len = self.uint(n)?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.input.len() - self.at)
            .ok_or(PickleError::Truncated)
    }

    /// A protocol-0 argument: the bytes up to the next `\n`.
    fn line(&mut self) -> Result<&[u8], PickleError> {
        let rest = &self.input[self.at..];
        let end = memchr::memchr(b'\n', rest).ok_or(PickleError::Truncated)?;
        self.at += end + 1;
        Ok(&rest[..end])
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(PickleError::Underflow),
            Some(value) => Ok(value),
        }
    }

    fn top(&self) -> Result<&Value, PickleError> {
        match self.stack.last() {
            Some(Value::Mark) | None => Err(PickleError::Underflow),
            Some(value) => Ok(value),
        }
    }

    /// The values above the topmost mark, which is removed with them.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .stack
            .iter()
            .rposition(|value| *value == Value::Mark)
            .ok_or(PickleError::Underflow)?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn text(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.len() <= MAX_TEXT => Value::Text(text.to_string()),
            _ => Value::Opaque,
        }
    }

    fn new_dict(&mut self, pairs: &[Value]) -> Value {
        self.dicts.push(Vec::new());
        let index = self.dicts.len() - 1;
        self.set_items(index, pairs);
        Value::Dict(index)
    }

    fn set_items(&mut self, dict: usize, pairs: &[Value]) {
        for pair in pairs.chunks_exact(2) {
            if let Value::Text(key) = &pair[0] {
                let entries = &mut self.dicts[dict];
                entries.retain(|(k, _)| k != key);
                match &pair[1] {
                    Value::Text(text) => entries.push((key.clone(), text.clone())),
                    Value::Int(n) => entries.push((key.clone(), n.to_string())),
                    _ => {}
                }
            }
        }
    }

    /// SETITEM and SETITEMS: `pairs` go into the dict below them.
    fn fill_dict(&mut self, pairs: Vec<Value>) -> Result<(), PickleError> {
        if pairs.len() % 2 != 0 {
            return Err(PickleError::Underflow);
        }
        if let Value::Dict(index) = *self.top()? {
            self.set_items(index, &pairs);
        }
        Ok(())
    }

    fn memo_put(&mut self, index: u64) -> Result<(), PickleError> {
        let value = self.top()?.clone();
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<(), PickleError> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or(PickleError::BadArgument)?;
        self.stack.push(value);
        Ok(())
    }

    fn decimal(line: &[u8]) -> Result<u64, PickleError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(PickleError::BadArgument)
    }

    /// Protocol 0's INT and LONG: `01`/`00` are True/False, `123L` a long.
    fn decimal_int(line: &[u8]) -> Value {
        let text = std::str::from_utf8(line).unwrap_or("");
        let text = text.trim().trim_end_matches('L');
        text.parse().map(Value::Int).unwrap_or(Value::Opaque)
    }

    /// Protocol 0's STRING: a Python literal in quotes; kept only when it
    /// has no escapes (a user id never needs one).
    fn quoted(line: &[u8]) -> Value {
        match line {
            [q @ (b'\'' | b'"'), inner @ .., last] if last == q && !inner.contains(&b'\\') => {
                Self::text(inner)
            }
            _ => Value::Opaque,
        }
    }

    /// Protocol 1+'s little-endian signed integers (LONG1, LONG4).
    fn signed(bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() > 8 {
            return Value::Opaque;
        }
        let mut buf = if bytes[bytes.len() - 1] & 0x80 != 0 {
            [0xff; 8]
        } else {
            [0; 8]
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        Value::Int(i64::from_le_bytes(buf))
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let opcode = self.byte()?;
            match opcode {
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?.clone();
                    self.stack.push(top);
                }
                // Numbers.
                b'F' => {
                    self.line()?;
                    self.stack.push(Value::Opaque);
                }
                b'I' | b'L' => {
                    let value = Self::decimal_int(self.line()?);
                    self.stack.push(value);
                }
                b'J' => {
                    let n = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(n.into()));
                }
                b'K' => {
                    let n = self.uint(1)?;
                    self.stack.push(Value::Int(n as i64));
                }
                b'M' => {
                    let n = self.uint(2)?;
                    self.stack.push(Value::Int(n as i64));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Opaque);
                }
                0x8a | 0x8b => {
                    let width = if opcode == 0x8a { 1 } else { 4 };
                    let len = self.length(width)?;
                    let value = Self::signed(self.take(len)?);
                    self.stack.push(value);
                }
                b'N' | 0x88 | 0x89 => self.stack.push(Value::Opaque),
                // Strings and bytes.
                b'S' => {
                    let value = Self::quoted(self.line()?);
                    self.stack.push(value);
                }
                b'V' => {
                    // raw-unicode-escape: kept when it has no escapes.
                    let line = self.line()?;
                    let value = if line.contains(&b'\\') {
                        Value::Opaque
                    } else {
                        Self::text(line)
                    };
                    self.stack.push(value);
                }
                b'X' | 0x8c | 0x8d => {
                    let width = match opcode {
                        0x8c => 1,
                        b'X' => 4,
                        _ => 8,
                    };
                    let len = self.length(width)?;
                    let value = Self::text(self.take(len)?);
                    self.stack.push(value);
                }
                // Python 2 str: bytes that are usually text.
                b'T' | b'U' => {
                    let len = self.length(if opcode == b'U' { 1 } else { 4 })?;
                    let value = Self::text(self.take(len)?);
                    self.stack.push(value);
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let width = match opcode {
                        b'C' => 1,
                        b'B' => 4,
                        _ => 8,
                    };
                    let len = self.length(width)?;
                    self.take(len)?;
                    self.stack.push(Value::Opaque);
                }
                // Containers.
                b'}' => {
                    let dict = self.new_dict(&[]);
                    self.stack.push(dict);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::Underflow);
                    }
                    let dict = self.new_dict(&items);
                    self.stack.push(dict);
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.fill_dict(vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.fill_dict(items)?;
                }
                b']' | b')' | 0x8f => self.stack.push(Value::Opaque),
                b'l' | b't' | 0x91 => {
                    self.pop_mark()?;
                    self.stack.push(Value::Opaque);
                }
                b'a' => {
                    self.pop()?;
                    self.top()?;
                }
                b'e' | 0x90 => {
                    self.pop_mark()?;
                    self.top()?;
                }
                0x85..=0x87 => {
                    for _ in 0..(opcode - 0x84) {
                        self.pop()?;
                    }
                    self.stack.push(Value::Opaque);
                }
                // Objects: named, never built.
                b'c' => {
                    self.line()?;
                    self.line()?;
                    self.stack.push(Value::Opaque);
                }
                b'i' => {
                    self.line()?;
                    self.line()?;
                    self.pop_mark()?;
                    self.stack.push(Value::Opaque);
                }
                b'o' => {
                    if self.pop_mark()?.is_empty() {
                        return Err(PickleError::Underflow);
                    }
                    self.stack.push(Value::Opaque);
                }
                0x93 | b'R' | 0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(Value::Opaque);
                }
                0x92 => {
                    for _ in 0..3 {
                        self.pop()?;
                    }
                    self.stack.push(Value::Opaque);
                }
                b'b' => {
                    self.pop()?;
                    self.top()?;
                }
                b'P' => {
                    self.line()?;
                    self.stack.push(Value::Opaque);
                }
                b'Q' => {
                    self.pop()?;
                    self.stack.push(Value::Opaque);
                }
                0x82..=0x84 => {
                    let width = [1, 2, 4][usize::from(opcode - 0x82)];
                    self.take(width)?;
                    self.stack.push(Value::Opaque);
                }
                // Memo.
                b'p' => {
                    let index = Self::decimal(self.line()?)?;
                    self.memo_put(index)?;
                }
                b'q' | b'r' => {
                    let index = self.uint(if opcode == b'q' { 1 } else { 4 })?;
                    self.memo_put(index)?;
                }
                0x94 => {
                    let index = self.memo.len() as u64;
                    self.memo_put(index)?;
                }
                b'g' => {
                    let index = Self::decimal(self.line()?)?;
                    self.memo_get(index)?;
                }
                b'h' | b'j' => {
                    let index = self.uint(if opcode == b'h' { 1 } else { 4 })?;
                    self.memo_get(index)?;
                }
                // Framing and buffers.
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                0x97 => self.stack.push(Value::Opaque),
                0x98 => {
                    self.top()?;
                }
                other => return Err(PickleError::UnknownOpcode(other)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(pickle: &[u8]) -> Option<String> {
        let dict = top_level_dict(pickle).unwrap()?;
        dict.into_iter()
            .find(|(k, _)| k == "_auth_user_id")
            .map(|(_, v)| v)
    }

    #[test]
    fn protocol_5_dict_with_an_object_beside_the_owner() {
        // pickle.dumps({'_auth_user_id': 'abc', 'tok': SomeClass()}, 5), by hand:
        let mut p = vec![0x80, 5, 0x95];
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(b"}\x94(\x8c\x0d_auth_user_id\x94\x8c\x03abc\x94");
        p.extend_from_slice(b"\x8c\x03tok\x94\x8c\x08__main__\x94\x8c\x04Some\x94\x93\x94)\x81\x94}\x94\x8c\x01x\x94K\x01sbu.");
        assert_eq!(owner(&p).as_deref(), Some("abc"));
    }

    #[test]
    fn protocol_0_dict() {
        // pickle.dumps({'_auth_user_id': '7', 'n': 1}, 0)
        let p = b"(dp0\nV_auth_user_id\np1\nV7\np2\nsVn\np3\nI1\ns.";
        assert_eq!(owner(p).as_deref(), Some("7"));
    }

    #[test]
    fn integer_owner_and_a_later_setitem_through_the_memo() {
        // A dict memoized, then filled after something else was pushed.
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01sh\x00X\x0d\x00\x00\x00_auth_user_idJ\x2a\x00\x00\x00s0.";
        assert_eq!(owner(p).as_deref(), Some("42"));
        let p = b"\x80\x02}q\x00h\x00X\x0d\x00\x00\x00_auth_user_idJ\x2a\x00\x00\x00s0.";
        assert_eq!(owner(p).as_deref(), Some("42"));
    }

    #[test]
    fn broken_pickles_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x80",
            b"s.",
            b"\x8c\xff",
            b"X\xff\xff\xff\xff",
            b"}(K\x01u.",
            b"\xff",
            b"h\x05.",
            b"\x8b\xff\xff\xff\x7f",
        ] {
            assert!(top_level_dict(bad).is_err(), "{bad:?}");
        }
        assert_eq!(top_level_dict(b"K\x01.").unwrap(), None);
    }
}
