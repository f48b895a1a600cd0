//! The layers only point down: lists every `crate::` reference between the
//! top-level modules of `src/` and fails on a cycle, naming it, and on any
//! edge that does not point down the order ARCHITECTURE.md declares ([`DECLARED`]).
//! A cycle is where the architecture stops telling the truth
//! (ARCHITECTURE.md): two modules that need each other are one module in two
//! folders.
//!
//! `cargo test --test layers -- --nocapture` prints the edges and the order
//! of the layers, lowest first.

#[path = "common/rust_files.rs"]
mod source;
use source::rust_files;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The top-level module a source file belongs to (`src/backend/sql/mod.rs`
/// → `backend`); `None` for the crate roots, which may use everything.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Top-level modules named by `crate::name` or `crate::{name, ...}` in
/// `code` (comments stripped first: a doc link is not a dependency).
fn referenced(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (at, _) in line.match_indices("crate::") {
            // `my_crate::` ends in "crate::" too; `$crate::` is a macro's.
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || "_:$".contains(c)) {
                continue;
            }
            let rest = &line[at + "crate::".len()..];
            match rest.strip_prefix('{') {
                Some(group) => {
                    let group = group.split('}').next().unwrap_or("");
                    names.extend(group.split(',').map(|item| ident(item.trim())));
                }
                None => {
                    names.insert(ident(rest));
                }
            }
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let code = std::fs::read_to_string(&file).unwrap();
        let where_ = file.strip_prefix(&src).unwrap().display().to_string();
        let edges = graph.entry(module.clone()).or_default();
        for target in referenced(&code) {
            if target != module {
                edges.entry(target).or_default().insert(where_.clone());
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|n| n == node).unwrap();
                let mut cycle = path[from..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

/// The modules in layer order: each only uses modules before it.
fn layers(graph: &Graph) -> Vec<String> {
    let mut placed: Vec<String> = Vec::new();
    let all: BTreeSet<&String> = graph
        .iter()
        .flat_map(|(from, edges)| std::iter::once(from).chain(edges.keys()))
        .collect();
    while placed.len() < all.len() {
        let next = all
            .iter()
            .find(|m| {
                !placed.contains(m)
                    && graph
                        .get(**m)
                        .is_none_or(|edges| edges.keys().all(|t| placed.contains(t)))
            })
            .expect("acyclic");
        placed.push((*next).clone());
    }
    placed
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = graph();
    for (from, edges) in &graph {
        for (to, files) in edges {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            println!("{from} -> {to}  ({})", files.join(", "));
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                let files = &graph[&pair[0]][&pair[1]];
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                format!("{} -> {} ({})", pair[0], pair[1], files.join(", "))
            })
            .collect();
        panic!(
            "the top-level modules of src/ form a cycle: {}\n  {}\n\
             move what both sides need into a module below them",
            cycle.join(" -> "),
            steps.join("\n  ")
        );
    }
    println!("layers, lowest first: {}", layers(&graph).join(", "));
}

/// The layers as ARCHITECTURE.md declares them, highest first; a module
/// may use only modules on a lower line.
const DECLARED: &[&[&str]] = &[
    &["server"],
    &["frontend", "admin"],
    &["session"],
    &["router"],
    &["django_sessions"],
    &["policy"],
    &["metrics"],
    &["backend"],
    &["workers", "config"],
    &["tls", "pattern", "op"],
];

/// The edges that do not point down the declared order, and the modules
/// the order does not place.
fn against_declared(graph: &Graph, declared: &[&[&str]]) -> Vec<String> {
    let level = |module: &str| declared.iter().position(|line| line.contains(&module));
    let mut problems = Vec::new();
    for (from, edges) in graph {
        for (to, files) in edges {
            match (level(from), level(to)) {
                (Some(a), Some(b)) if a < b => {}
                (Some(_), Some(_)) => {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    problems.push(format!(
                        "{from} -> {to} ({}) points up or sideways",
                        files.join(", ")
                    ));
                }
                (None, _) => problems.push(format!("{from} is in no declared layer")),
                (_, None) => problems.push(format!("{to} is in no declared layer")),
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn every_edge_points_down_the_declared_layers() {
    let problems = against_declared(&graph(), DECLARED);
    assert!(
        problems.is_empty(),
        "the modules of src/ break the declared layers (tests/layers.rs DECLARED, ARCHITECTURE.md \
         \"Layers\"):\n  {}\nmove the code down, or change the declared order on purpose \
         (and ARCHITECTURE.md with it)",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_sees_references_and_cycles() {
    let code = "use crate::{config::Config, op};\nlet x = crate::backend::memory::X; // crate::policy\nmy_crate::y; $crate::z;";
    let names: Vec<String> = referenced(code).into_iter().collect();
    assert_eq!(names, ["backend", "config", "op"]);
    let mut graph = Graph::new();
    let edge = |graph: &mut Graph, a: &str, b: &str| {
        graph
            .entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("f.rs".into());
    };
    edge(&mut graph, "a", "b");
    edge(&mut graph, "b", "c");
    assert_eq!(find_cycle(&graph), None);
    assert_eq!(layers(&graph), ["c", "b", "a"]);
    assert!(against_declared(&graph, &[&["a"], &["b"], &["c"]]).is_empty());
    let wrong = against_declared(&graph, &[&["a"], &["b", "c"]]);
    assert_eq!(wrong, ["b -> c (f.rs) points up or sideways"]);
    let unplaced = against_declared(&graph, &[&["a"], &["b"]]);
    assert_eq!(unplaced, ["c is in no declared layer"]);
    edge(&mut graph, "c", "a");
    assert_eq!(
        find_cycle(&graph).unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
}
