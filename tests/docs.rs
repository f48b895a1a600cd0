//! The maps stay true: every relative link in README, ARCHITECTURE.md, the
//! docs/ book and tests/README.md leads to a file that exists (and, with an
//! `#anchor`, to a heading there); every page of the book is reachable from
//! README; and every source path ARCHITECTURE.md names (its traces and
//! layout) exists, so a moved or renamed file fails here until the map
//! follows it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages the checks read, relative to the repository root.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        PathBuf::from("README.md"),
        PathBuf::from("ARCHITECTURE.md"),
        PathBuf::from("BENCHMARKS.md"),
        PathBuf::from("tests/README.md"),
    ];
    let mut book: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| path.strip_prefix(root()).expect("under root").to_path_buf())
        .collect();
    book.sort();
    pages.extend(book);
    pages
}

fn read(page: &Path) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page:?}: {e}"))
}

/// Lines outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .filter_map(|line| {
            let heading = line.trim_start_matches('#');
            (line.starts_with('#') && heading.starts_with(' ')).then(|| anchor(heading))
        })
        .collect()
}

/// Every `](target)` of a page's prose.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

#[test]
fn every_link_leads_somewhere() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        let here = page.parent().unwrap_or(Path::new(""));
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                here.join(path)
            };
            if !root().join(&target).exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            let is_markdown = target.extension().is_some_and(|e| e == "md");
            if !fragment.is_empty() && is_markdown && !anchors(&read(&target)).contains(fragment) {
                broken.push(format!("{}: {link} (no such heading)", page.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn every_page_of_the_book_is_linked_from_readme() {
    let readme = links(&read(Path::new("README.md")));
    let missing: Vec<String> = pages()
        .iter()
        .filter(|page| page.starts_with("docs") || page.as_os_str() == "ARCHITECTURE.md")
        .map(|page| page.display().to_string())
        .filter(|page| {
            !readme
                .iter()
                .any(|link| link.split('#').next() == Some(page))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "pages README does not link to: {missing:?}"
    );
}

#[test]
fn every_path_architecture_names_exists() {
    let text = read(Path::new("ARCHITECTURE.md"));
    let mut missing = Vec::new();
    for quoted in text.split('`').skip(1).step_by(2) {
        let looks_like_path = (quoted.starts_with("src/")
            || quoted.starts_with("protocol/")
            || quoted.starts_with("tests/"))
            && !quoted.contains(' ');
        if looks_like_path && !root().join(quoted).exists() {
            missing.push(quoted.to_string());
        }
    }
    // The layout block names files relative to the folder on their line.
    let mut folder = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            continue;
        }
        if let Some(first) = line.split_whitespace().next() {
            if !line.starts_with(' ') {
                folder = first.to_string();
                if (folder.ends_with('/') || folder.ends_with(".rs"))
                    && !root().join(&folder).exists()
                {
                    missing.push(folder.clone());
                }
            }
        }
        if !folder.ends_with('/') || !folder.starts_with("src/") {
            continue;
        }
        for word in line.split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | ':')) {
            if word.ends_with(".rs") && !word.contains('/') {
                let path = root().join(&folder).join(word);
                let nested = std::fs::read_dir(root().join(&folder))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|entry| entry.path().join(word).exists());
                if !path.exists() && !nested {
                    missing.push(format!("{folder}{word}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}
