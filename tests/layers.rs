//! Defender's modules form layers that only point down: facts about a
//! request at the bottom, policies above them, the engine above policies,
//! loading and adapters (server, harness, CLI) on top. This test reads every
//! `crate::` path in `src/`, and `super::` between submodules (test code
//! aside), and fails on an import of a
//! module from its own layer or one above, and on a cycle between the
//! submodules of one module.
//!
//! `MODULE_GRAPH=1 cargo test --test layers -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. A module may use the modules of any layer below its own.
const LAYERS: &[&[&str]] = &[
    // Facts and formats that know nothing of Defender's policies.
    &["clock", "selector", "yaml", "paths", "decode", "certs", "logging", "cluster", "routing"],
    &["request", "period", "budget", "manifests"],
    &["settings", "custom_resources"],
    &["protected_objects"],
    // What Defender knows of the cluster.
    &["view"],
    &["policy"],
    // Judging, and loading policies into policy types.
    &["engine", "config", "webhooks"],
    // The AdmissionReview wire format around the engine.
    &["admission"],
    &["synthetic"],
    // Adapters.
    &["audit", "harness"],
    &["server"],
    &["cli"],
];

/// Entry points and test helpers, outside the layers.
const OUTSIDE: &[&str] = &["lib", "main", "testing"];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn modules_import_only_from_layers_below_their_own() {
    let graph = top_level_graph();
    if std::env::var_os("MODULE_GRAPH").is_some() {
        print_graph(&graph);
    }
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        let Some(layer) = layer_of(module) else {
            wrong.push(format!("src/{module} is in no layer: add it to LAYERS in tests/layers.rs"));
            continue;
        };
        for used in uses {
            match layer_of(used) {
                Some(used_layer) if used_layer < layer => {}
                Some(_) => wrong.push(format!("{module} uses {used}, which is not in a layer below it")),
                None if OUTSIDE.contains(&used.as_str()) => {
                    wrong.push(format!("{module} uses {used}, which is outside the layers"))
                }
                None => wrong.push(format!("{module} uses {used}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_submodules_of_a_module_have_no_cycle() {
    let mut cycles = Vec::new();
    for (module, graph) in submodule_graphs() {
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{module}: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "cycles between submodules:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_sees_the_imports_it_checks() {
    let graph = top_level_graph();
    assert!(graph["engine"].contains("policy"), "{:?}", graph["engine"]);
    assert!(graph["server"].contains("engine"), "{:?}", graph["server"]);
    assert!(
        find_cycle(&Graph::from([
            ("a".into(), BTreeSet::from(["b".into()])),
            ("b".into(), BTreeSet::from(["a".into()])),
        ]))
        .is_some()
    );
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Which top-level modules each top-level module names through `crate::`.
fn top_level_graph() -> Graph {
    let mut graph = Graph::new();
    for file in source_files() {
        let (module, _) = module_of(&file);
        if OUTSIDE.contains(&module.as_str()) {
            continue;
        }
        let uses = graph.entry(module.clone()).or_default();
        for path in paths_from(&non_test_code(&file), "crate::") {
            let used = path.split("::").next().unwrap_or_default().to_owned();
            if used != module {
                uses.insert(used);
            }
        }
    }
    graph
}

/// For each module with submodules: which of its submodules each one names.
fn submodule_graphs() -> BTreeMap<String, Graph> {
    let mut graphs: BTreeMap<String, Graph> = BTreeMap::new();
    for file in source_files() {
        let (module, Some(submodule)) = module_of(&file) else { continue };
        let code = non_test_code(&file);
        let prefix = format!("{module}::");
        let mut named: Vec<String> = paths_from(&code, "crate::")
            .into_iter()
            .filter_map(|path| path.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        // In `src/<module>/<file>.rs`, `super::` is the module itself.
        if file.parent().is_some_and(|dir| dir.ends_with(&module)) {
            named.extend(paths_from(&code, "super::"));
        }
        let uses = graphs.entry(module.clone()).or_default().entry(submodule.clone()).or_default();
        for path in named {
            let used = path.split("::").next().unwrap_or_default();
            if used != submodule && is_submodule(&module, used) {
                uses.insert(used.to_owned());
            }
        }
    }
    graphs
}

fn is_submodule(module: &str, name: &str) -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(module);
    dir.join(format!("{name}.rs")).is_file() || dir.join(name).is_dir()
}

/// `src/server/metrics.rs` is (`server`, `metrics`); `src/engine.rs` is (`engine`, none).
fn module_of(file: &Path) -> (String, Option<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let relative = file.strip_prefix(&src).expect("a file under src/");
    let mut parts = relative.iter().map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned());
    let module = parts.next().unwrap_or_default();
    let submodule = parts.next().filter(|part| part != "mod");
    (module, submodule)
}

/// Every `.rs` file under `src/` except test modules kept in their own file.
fn source_files() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    defender::paths::files_under(&src, &["rs"], defender::paths::Depth::Tree)
        .into_iter()
        .map(|file| file.expect("src/ can be listed"))
        .filter(|file| file.file_name().is_some_and(|name| name != "tests.rs"))
        .collect()
}

/// The file's code before its `#[cfg(test)] mod tests`, comments removed.
fn non_test_code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("a readable source file");
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    code.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// `engine::Engine` for each `crate::engine::Engine` in `code` (with
/// `prefix` `crate::`); a grouped `use crate::{a, b}` gives `a` and `b`.
fn paths_from(code: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        // `super::super::x` is not a sibling.
        if code[..at].ends_with("super::") {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            paths.extend(inner.split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()));
        } else {
            let end =
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            paths.push(rest[..end].to_owned());
        }
    }
    paths
}

/// One cycle in `graph`, if any, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|visited| visited == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn print_graph(graph: &Graph) {
    for (layer, modules) in LAYERS.iter().enumerate().rev() {
        for module in *modules {
            let uses: Vec<&str> = graph.get(*module).into_iter().flatten().map(String::as_str).collect();
            println!("{layer:>2} {module:<17} -> {}", uses.join(" "));
        }
    }
}
