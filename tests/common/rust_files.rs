//! The Rust source files under a directory, for the tests that read the
//! source itself (tests/layers.rs, tests/sizes.rs).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively, added to `out`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
