//! The adapters stay laid out alike (STYLE.md, issue 31): every provider crate has the same
//! files, and no two of a crate's modules import each other, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The adapter crates under providers/ (`aws` and `azure-auth` are shared helpers, `storage`
/// the contract).
const ADAPTERS: &[&str] = &["s3", "gcs", "azure", "ebs", "gce-disk", "azure-disk"];

/// What every adapter has: the settings, the only file that builds the SDK client and its
/// credential chain, the trait, and SDK errors to ours.
const EVERY_ADAPTER_HAS: &[&str] = &["lib.rs", "config.rs", "client.rs", "store.rs", "error.rs"];

/// The modules of this crate that `source` names through `crate::` (in `use` lines, paths and
/// `use crate::{a::x, b::y}` groups); `$crate::` inside a macro is not an import.
fn imports(source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if before.is_some_and(|c| c == '$' || c == ':' || c.is_alphanumeric() || c == '_') {
                continue;
            }
            let names: Vec<&str> = if let Some(group) = after.strip_prefix('{') {
                // The group's top-level items: split at `,` outside inner braces.
                let mut names = Vec::new();
                let mut depth = 0;
                let mut item = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            names.push(group[item..i].trim_start());
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.push(group[item..i].trim_start());
                            item = i + 1;
                        }
                        _ => {}
                    }
                }
                names
            } else {
                vec![after]
            };
            for n in names {
                let ident: String = n
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&ident) {
                    found.insert(ident);
                }
            }
        }
    }
    found
}

/// A cycle in `graph` (module -> modules it imports), as the path that closes it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// The import graph of one crate's `src/` (modules are the files beside lib.rs).
fn graph_of(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if name != "lib" {
                files.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(name, source)| {
            let mut uses = imports(source, &modules);
            uses.remove(name);
            (name.clone(), uses)
        })
        .collect()
}

#[test]
fn every_adapter_has_the_same_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let mut missing = Vec::new();
    for adapter in ADAPTERS {
        let src = root.join(adapter).join("src");
        for file in EVERY_ADAPTER_HAS {
            if !src.join(file).is_file() {
                missing.push(format!("providers/{adapter}/src/{file}"));
            }
        }
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        for module in graph_of(&src).keys() {
            assert!(
                lib.contains(&format!("mod {module};")),
                "providers/{adapter}/src/{module}.rs is not a module of the crate"
            );
        }
    }
    assert!(missing.is_empty(), "missing: {missing:?}");
}

#[test]
fn no_two_modules_of_an_adapter_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    for adapter in ADAPTERS.iter().chain(&["aws", "azure-auth", "storage"]) {
        let graph = graph_of(&root.join(adapter).join("src"));
        if let Some(c) = cycle(&graph) {
            panic!(
                "providers/{adapter}: modules import each other: {}",
                c.join(" -> ")
            );
        }
    }
}

#[test]
fn the_checker_sees_cycles_and_grouped_imports() {
    let modules: BTreeSet<String> = ["store", "client", "metadata"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let src = "use crate::{client::{Inner, X}, metadata::meta};\n// use crate::store::Y;\nlet a = $crate::store::z();\nlet b = offsite::crate::store;";
    let got = imports(src, &modules);
    assert_eq!(
        got,
        ["client", "metadata"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let mut graph = BTreeMap::new();
    graph.insert(
        "store".to_string(),
        imports("use crate::client::Inner;", &modules),
    );
    graph.insert(
        "client".to_string(),
        imports("fn f() { crate::metadata::m() }", &modules),
    );
    graph.insert("metadata".to_string(), BTreeSet::new());
    assert_eq!(cycle(&graph), None);
    graph.insert(
        "metadata".to_string(),
        imports("use crate::store::PROVIDER;", &modules),
    );
    let c = cycle(&graph).expect("store -> client -> metadata -> store");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4, "{c:?}");
}
