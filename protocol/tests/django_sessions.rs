//! The session reader against values the real client libraries wrote
//! (fixtures/django_sessions, made by its make.py with pymemcache, pylibmc,
//! Django's RedisCache and django-redis with each serializer and
//! compressor): every owner found, no value run.

use std::path::Path;

use keyway_protocol::django::{read_owner, Owner};

#[test]
fn every_library_and_serializer_gives_its_owner() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django_sessions");
    let expected: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert!(expected.len() >= 37, "fixtures missing: run make.py");
    for (file, owner) in &expected {
        let flags: u32 = file
            .rsplit_once(".flags-")
            .and_then(|(_, rest)| rest.strip_suffix(".bin"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{file}: name has no flags"));
        let value = std::fs::read(dir.join(file)).unwrap();
        let want = if owner.is_empty() {
            Owner::Anonymous
        } else {
            Owner::User(owner.clone())
        };
        assert_eq!(read_owner(&value, flags), want, "{file}");
    }
}

#[test]
fn a_damaged_value_is_unreadable_at_every_length() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django_sessions");
    let value = std::fs::read(dir.join("pymemcache-signed-in.flags-1.bin")).unwrap();
    for len in 0..value.len() {
        // Cut anywhere before STOP: never a panic, never a wrong owner.
        match read_owner(&value[..len], 1) {
            Owner::Unreadable(_) => {}
            other => panic!("cut at {len}: {other:?}"),
        }
    }
}
