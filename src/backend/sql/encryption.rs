//! Values encrypted at rest (`encryption_key_file` on a SQL backend):
//! AES-256-GCM from `ring` (the crate rustls already uses), one random
//! 96-bit nonce per write.
//!
//! A sealed value is `MAGIC, key id (u32, big-endian), nonce, ciphertext and
//! tag`. The key id lets keys rotate: the key file lists every key still
//! needed to read old rows, the first one seals new writes, and
//! `keyway rekey` seals old rows again under it. The associated data binds
//! each value to its header, its database and its key, so a value copied to
//! another row does not open.
//!
//! A value without `MAGIC` was written before encryption was turned on: it
//! is read as it is (and `keyway rekey` seals it). A value with `MAGIC` read
//! by a backend without the key gives an error naming what to fix, never
//! the sealed bytes.

use std::collections::HashMap;
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Marks a sealed value (8 bytes a pickle, a number or text does not start with).
pub const MAGIC: &[u8; 8] = b"\0KWAEAD1";
const HEADER: usize = MAGIC.len() + 4 + NONCE_LEN;
const TAG: usize = 16;

/// The keys of one key file; the first seals, all open.
pub struct Keyring {
    sealing: u32,
    keys: HashMap<u32, LessSafeKey>,
    random: SystemRandom,
}

/// Whether a stored value is sealed, and under which key id.
pub fn sealed_with(stored: &[u8]) -> Option<u32> {
    if stored.len() < HEADER + TAG || !stored.starts_with(MAGIC) {
        return None;
    }
    let id = &stored[MAGIC.len()..MAGIC.len() + 4];
    Some(u32::from_be_bytes(id.try_into().expect("four bytes")))
}

impl Keyring {
    /// Reads a key file: one `<id>:<64 hex digits>` per line (`#` comments
    /// and blank lines ignored), ids from 1; the first key seals new writes.
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!("encryption_key_file {shown}: {e} (without it no row it sealed can be read)")
        })?;
        let mut sealing = None;
        let mut keys = HashMap::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| {
                format!(
                    "encryption_key_file {shown} line {number}: {why}; each key is \
                     `<id>:<64 hex digits>`, e.g. `echo \"1:$(openssl rand -hex 32)\" >> {shown}`"
                )
            };
            let (id, hex_key) = line.split_once(':').ok_or_else(|| bad("no `:`"))?;
            let id: u32 = id
                .trim()
                .parse()
                .ok()
                .filter(|&id| id > 0)
                .ok_or_else(|| bad("the id is not a number from 1"))?;
            let bytes = hex::decode(hex_key.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| bad("the key is not 64 hex digits (32 bytes)"))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
            if keys.insert(id, LessSafeKey::new(key)).is_some() {
                return Err(bad(&format!("key id {id} appears twice")));
            }
            sealing.get_or_insert(id);
        }
        let sealing =
            sealing.ok_or_else(|| format!("encryption_key_file {shown}: holds no key"))?;
        Ok(Self {
            sealing,
            keys,
            random: SystemRandom::new(),
        })
    }

    /// The key id new writes are sealed with.
    pub fn sealing_id(&self) -> u32 {
        self.sealing
    }

    /// `value` sealed under the first key, bound to `db` and `key`.
    pub fn seal(&self, db: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the operating system's random source answers");
        let mut sealed = Vec::with_capacity(HEADER + value.len() + TAG);
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&self.sealing.to_be_bytes());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(value);
        let (header, body) = sealed.split_at_mut(HEADER);
        let tag = self.keys[&self.sealing]
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated(header, db, key)),
                body,
            )
            .expect("values are far below AES-GCM's length limit");
        sealed.extend_from_slice(tag.as_ref());
        sealed
    }

    /// The value a stored row holds: opened when sealed, as it is when
    /// written before encryption was turned on.
    pub fn open(&self, db: i64, key: &[u8], mut stored: Vec<u8>) -> Result<Vec<u8>, String> {
        let Some(id) = sealed_with(&stored) else {
            return Ok(stored);
        };
        let Some(opener) = self.keys.get(&id) else {
            return Err(format!(
                "this row was sealed with key id {id}, which the encryption_key_file does not \
                 hold; add that key back (after the sealing key) to read it"
            ));
        };
        let (header, body) = stored.split_at_mut(HEADER);
        let nonce = Nonce::try_assume_unique_for_key(&header[MAGIC.len() + 4..])
            .expect("the header holds a whole nonce");
        let opened = opener
            .open_in_place(nonce, Aad::from(associated(header, db, key)), body)
            .map_err(|_| {
                format!(
                    "this row does not open with key id {id} of the encryption_key_file: the \
                     key under that id is not the one that sealed it, or the row was altered"
                )
            })?
            .len();
        stored.drain(..HEADER);
        stored.truncate(opened);
        Ok(stored)
    }
}

/// What a sealed value is bound to: its header, database and key.
fn associated(header: &[u8], db: i64, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 8 + key.len());
    aad.extend_from_slice(&header[..MAGIC.len() + 4]);
    aad.extend_from_slice(&db.to_be_bytes());
    aad.extend_from_slice(key);
    aad
}

/// The stored value of a backend without a key file: a sealed one is an
/// error, never bytes handed to a client.
pub fn refuse_sealed(stored: Vec<u8>) -> Result<Vec<u8>, String> {
    match sealed_with(&stored) {
        None => Ok(stored),
        Some(id) => Err(format!(
            "this row is encrypted (key id {id}) and the backend has no encryption_key_file; \
             set it to the key file that sealed it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(text: &str) -> Result<Keyring, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, text).unwrap();
        Keyring::load(&path)
    }

    const K1: &str = "1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "2:ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seals_opens_and_rotates() {
        let old = keyring(K1).unwrap();
        let sealed = old.seal(0, b"k", b"token");
        assert_eq!(sealed_with(&sealed), Some(1));
        assert!(!sealed.windows(5).any(|w| w == b"token"));
        let rotated = keyring(&format!("# new first\n{K2}\n{K1}\n")).unwrap();
        assert_eq!(rotated.sealing_id(), 2);
        assert_eq!(rotated.open(0, b"k", sealed.clone()).unwrap(), b"token");
        // Bound to its row.
        assert!(rotated.open(0, b"other", sealed.clone()).is_err());
        assert!(rotated.open(1, b"k", sealed.clone()).is_err());
        // A key file without key 1 names it.
        let only_new = keyring(K2).unwrap();
        let error = only_new.open(0, b"k", sealed.clone()).unwrap_err();
        assert!(error.contains("key id 1"), "{error}");
        // A different key under the same id.
        let wrong = keyring(&K1.replace(":00", ":ee")).unwrap();
        assert!(wrong.open(0, b"k", sealed.clone()).is_err());
        // Plain rows from before encryption read as they are.
        assert_eq!(old.open(0, b"k", b"plain".to_vec()).unwrap(), b"plain");
        assert!(refuse_sealed(sealed).is_err());
        assert_eq!(refuse_sealed(b"plain".to_vec()).unwrap(), b"plain");
    }

    #[test]
    fn bad_key_files_name_the_line() {
        for (text, needle) in [
            ("", "holds no key"),
            ("1:abc", "line 1"),
            ("x:00", "id"),
            (&format!("{K1}\n{K1}"), "twice"),
            ("nocolon", "no `:`"),
        ] {
            let error = keyring(text).err().expect(text);
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }
}
