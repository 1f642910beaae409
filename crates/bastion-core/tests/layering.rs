//! The modules of `bastion-core` form layers: no module imports one that imports it back,
//! directly or through others. This test reads `src/**/*.rs`, builds the graph of
//! `crate::<module>` references between top-level modules (a directory module such as
//! `types/` is one node; items of the crate root, such as `Cse`, belong to no layer) and
//! fails with the cycle it finds, each step with the line that makes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `crate::` reference: the module it names and the line that names it.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to; `None` for the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib").then_some(name)
}

/// The first identifiers of the paths following `crate::` in `code`, each with its
/// byte offset: one for `crate::a::b`, one per member of a `crate::{a, b::{c, d}}` group.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at + "crate::".len();
        from = start;
        let Some(group) = code[start..].strip_prefix('{') else {
            out.push((start, ident(&code[start..])));
            continue;
        };
        // Members at depth 0 of the group, up to its closing brace.
        let mut depth = 0;
        let mut member_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => member_start = true,
                c if member_start && !c.is_whitespace() => {
                    member_start = false;
                    out.push((start + 1 + i, ident(&group[i..])));
                }
                _ => {}
            }
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn import_graph(src: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges = Edges::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        // Comments (doc comments included) name modules without importing them.
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let shown = file.strip_prefix(src).expect("under src").display();
        for (at, to) in crate_paths(&code) {
            if to != from && modules.contains(&to) {
                let line_no = code[..at].matches('\n').count();
                let line = code.lines().nth(line_no).unwrap_or("").trim();
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{shown}:{}: {line}", line_no + 1));
            }
        }
    }
    edges
}

/// A cycle of `edges`, as the modules along it (first repeated at the end).
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &Edges,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flat_map(|e| e.keys()) {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|m| m == next).expect("on the path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node) {
            if let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn core_modules_import_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = import_graph(&src);
    assert!(
        edges.len() > 10,
        "the import graph looks empty; is the scan broken?"
    );
    if let Some(cycle) = find_cycle(&edges) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("  {} -> {}   ({})", w[0], w[1], edges[&w[0]][&w[1]]))
            .collect();
        panic!(
            "bastion-core modules import each other in a cycle:\n{}",
            steps.join("\n")
        );
    }
}

#[test]
fn the_scan_sees_groups_and_the_cycle_finder_finds_cycles() {
    let names = |code: &str| -> Vec<String> {
        crate_paths(code)
            .into_iter()
            .map(|(_, name)| name)
            .collect()
    };
    assert_eq!(
        names("use crate::{tree::Node,\n    types::{self, x}, Cse};"),
        ["tree", "types", "Cse"]
    );
    assert_eq!(names("let x = crate::pch::owns(a);"), ["pch"]);
    let mut edges = Edges::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "d")] {
        edges
            .entry(from.into())
            .or_default()
            .insert(to.into(), String::new());
    }
    assert_eq!(find_cycle(&edges), None);
    edges
        .entry("d".into())
        .or_default()
        .insert("b".into(), String::new());
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["b".into(), "c".into(), "d".into(), "b".into()])
    );
}
