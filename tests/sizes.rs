//! Files and functions that fit in a head. Counts, over the non-test code
//! of `src/` and `protocol/src/`:
//!
//! - a file's lines: every line of the file (code, comments and blank
//!   lines alike, as `wc -l` counts them) except the lines of its
//!   `#[cfg(test)]` items; a file that is only a `#[cfg(test)] mod` of
//!   another (`request_tests.rs`) is not counted;
//! - a function's lines: from its `fn` keyword to its closing brace (doc
//!   comments and attributes not included), for every function with a body
//!   — free, in an `impl`, a trait default, nested — outside `#[cfg(test)]`
//!   items and not itself a `#[test]`.
//!
//! The files are parsed with `syn`, so braces in strings and comments do
//! not fool the count. `cargo test --test sizes -- --nocapture` prints the
//! files over [`FILE_LINES`] and the functions over [`FN_LINES`]. The test
//! fails when either list grows past its budget: at most 3 such files and
//! 5 such functions (issue 26's goal, reached); split a file or function
//! before it makes a fourth or a sixth.

#[path = "common/rust_files.rs"]
mod source;
use source::rust_files;

use std::path::PathBuf;

use syn::spanned::Spanned;
use syn::visit::Visit;

const FILE_LINES: usize = 500;
const FN_LINES: usize = 60;
/// At most this many files over [`FILE_LINES`] (goal: 3).
const FILES_OVER_BUDGET: usize = 3;
/// At most this many functions over [`FN_LINES`] (goal: 5).
const FNS_OVER_BUDGET: usize = 5;

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        path.is_ident("test") || path.segments.last().is_some_and(|s| s.ident == "test")
    })
}

/// The functions of one file over [`FN_LINES`], outside test items.
struct Functions {
    file: String,
    long: Vec<(usize, String)>,
}

impl Functions {
    fn measure(&mut self, name: &syn::Ident, fn_token: &syn::token::Fn, block: &syn::Block) {
        let first = fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        let lines = last + 1 - first;
        if lines > FN_LINES {
            self.long
                .push((lines, format!("{}:{first} {name}", self.file)));
        }
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if is_test(&f.attrs) {
            return;
        }
        self.measure(&f.sig.ident, &f.sig.fn_token, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_cfg_test(&f.attrs) {
            return;
        }
        self.measure(&f.sig.ident, &f.sig.fn_token, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.measure(&f.sig.ident, &f.sig.fn_token, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

struct Counts {
    files: Vec<(usize, String)>,
    functions: Vec<(usize, String)>,
}

/// One file's lines outside its `#[cfg(test)]` items, and its functions
/// over [`FN_LINES`] (with their lengths) outside test items.
fn measure(name: &str, text: &str, file: &syn::File) -> (usize, Vec<(usize, String)>) {
    let test_lines: usize = file
        .items
        .iter()
        .filter(|item| match item {
            syn::Item::Mod(m) => is_cfg_test(&m.attrs),
            syn::Item::Fn(f) => is_cfg_test(&f.attrs),
            syn::Item::Impl(i) => is_cfg_test(&i.attrs),
            syn::Item::Use(u) => is_cfg_test(&u.attrs),
            _ => false,
        })
        .map(|item| {
            let span = item.span();
            span.end().line + 1 - span.start().line
        })
        .sum();
    let mut functions = Functions {
        file: name.to_string(),
        long: Vec::new(),
    };
    functions.visit_file(file);
    (text.lines().count() - test_lines, functions.long)
}

fn count() -> Counts {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in ["src", "protocol/src"] {
        rust_files(&root.join(dir), &mut paths);
    }
    paths.sort();
    let parsed: Vec<(PathBuf, String, syn::File)> = paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            (path, text, file)
        })
        .collect();
    // Files that are a `#[cfg(test)] mod name;` of another.
    let mut test_only = Vec::new();
    for (path, _, file) in &parsed {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let dir = match stem {
            "mod" | "lib" | "main" => path.parent().unwrap().to_path_buf(),
            _ => path.with_extension(""),
        };
        for item in &file.items {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() && is_cfg_test(&m.attrs) {
                    let name = m.ident.to_string();
                    test_only.push(dir.join(format!("{name}.rs")));
                    test_only.push(dir.join(name).join("mod.rs"));
                }
            }
        }
    }
    let mut counts = Counts {
        files: Vec::new(),
        functions: Vec::new(),
    };
    for (path, text, file) in &parsed {
        if test_only.contains(path) {
            continue;
        }
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        let (lines, long) = measure(&name, text, file);
        if lines > FILE_LINES {
            counts.files.push((lines, name));
        }
        counts.functions.extend(long);
    }
    counts.files.sort_by(|a, b| b.cmp(a));
    counts.functions.sort_by(|a, b| b.cmp(a));
    counts
}

fn listing(items: &[(usize, String)]) -> String {
    items
        .iter()
        .map(|(lines, name)| format!("{lines:>6}  {name}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn files_and_functions_stay_within_their_budget() {
    let counts = count();
    println!(
        "{} files over {FILE_LINES} lines (budget {FILES_OVER_BUDGET}, goal 3):\n{}",
        counts.files.len(),
        listing(&counts.files)
    );
    println!(
        "{} functions over {FN_LINES} lines (budget {FNS_OVER_BUDGET}, goal 5):\n{}",
        counts.functions.len(),
        listing(&counts.functions)
    );
    assert!(
        counts.files.len() <= FILES_OVER_BUDGET,
        "{} files over {FILE_LINES} lines, budget {FILES_OVER_BUDGET}: split the new one\n{}",
        counts.files.len(),
        listing(&counts.files)
    );
    assert!(
        counts.functions.len() <= FNS_OVER_BUDGET,
        "{} functions over {FN_LINES} lines, budget {FNS_OVER_BUDGET}: split the new one\n{}",
        counts.functions.len(),
        listing(&counts.functions)
    );
}

/// The counting itself, on a made-up file: a 61-line function counts (its
/// doc comment does not), a 60-line one does not, nor do a `#[test]`, a
/// `#[cfg(test)]` module or a brace inside a string.
#[test]
fn counts_what_it_says_it_counts() {
    let body = |lines: usize| "    let _ = 0;\n".repeat(lines - 2);
    let text = format!(
        "/// A doc comment.\n/// Two lines.\nfn long() {{\n{}}}\n\
         fn short() {{\n{}}}\n\
         impl S {{\n    fn method() {{\n    let _ = \"}}}}}}\";\n{}    }}\n}}\n\
         #[test]\nfn a_test() {{\n{}}}\n\
         #[cfg(test)]\nmod tests {{\n    fn helper() {{\n{}}}\n}}\n",
        body(61),
        body(60),
        body(60),
        body(61),
        body(70),
    );
    let file = syn::parse_file(&text).unwrap();
    let (lines, long) = measure("made_up.rs", &text, &file);
    let names: Vec<&str> = long.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["made_up.rs:3 long", "made_up.rs:125 method"]);
    assert_eq!(long[0].0, 61);
    // `#[cfg(test)]`, `mod tests {`, and `helper`'s 70 lines but its own
    // closing brace counted among them, then the module's `}`.
    let test_module_lines = 2 + 70 + 1;
    assert_eq!(lines, text.lines().count() - test_module_lines);
}
