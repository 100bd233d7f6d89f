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

/// The SDKs' crates, as a path in Rust code names them.
const SDK_PATHS: &[&str] = &[
    "aws_sdk_",
    "aws_config::",
    "aws_smithy_",
    "aws_credential_types::",
    "aws_types::",
    "azure_core::",
    "azure_identity::",
    "azure_storage_blob::",
    "google_cloud_",
    "gcloud_storage::",
    "gcloud_auth::",
];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The binary reaches the clouds only through the adapters' own types: no SDK type in what the
/// adapters export to it, so none in its code (comments aside), and no SDK among its
/// dependencies (only the adapter crates and the two shared helpers under providers/ hold them).
#[test]
fn the_binary_names_no_sdk_type() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 20, "src/ read: {files:?}");
    let mut named = Vec::new();
    for f in &files {
        for (n, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(p) = SDK_PATHS.iter().find(|p| code.contains(*p)) {
                named.push(format!("{}:{}: {p}", f.display(), n + 1));
            }
        }
    }
    assert!(
        named.is_empty(),
        "SDK types named by the binary:\n{}",
        named.join("\n")
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .expect("the root Cargo.toml has [dependencies]");
    for sdk in [
        "aws-sdk",
        "aws-config",
        "aws-smithy",
        "azure_",
        "google-cloud",
        "gcloud",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(sdk)),
            "the binary depends on {sdk} directly"
        );
    }
}
