//! Defender's modules form layers that only point down: facts about a
//! request at the bottom, policies above them, the engine above policies,
//! loading and adapters (server, harness, CLI) on top. This test reads every
//! `crate::` and `super::` path in `src/` (grouped `use` trees included,
//! comments and string literals left out), follows a name that a module
//! re-exports (`pub use contract::Rule` in `policy/mod.rs`) back to the
//! submodule that defines it, and fails on an import of a module from its
//! own layer or one above, and on a cycle between the submodules of one
//! module.
//!
//! Test code is exempt: a `#[cfg(test)] mod tests` block, and a `tests.rs`
//! file (the same block kept in its own file). Tests are built only for
//! `cargo test` and reach across layers on purpose, to build a fixture or to
//! look at what a module keeps private; what ships is the rest.
//!
//! `MODULE_GRAPH=1 cargo test --test layers -- --nocapture` prints the graph
//! (and `tools/module-graph.sh` prints the top level for any revision).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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

/// A module's path below the crate root: `["policy", "contract"]`.
type ModulePath = Vec<String>;

#[test]
fn modules_import_only_from_layers_below_their_own() {
    let graph = Crate::from_src().top_level_graph();
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
    for (module, graph) in Crate::from_src().submodule_graphs() {
        if std::env::var_os("MODULE_GRAPH").is_some() {
            for (submodule, uses) in &graph {
                let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
                println!("{module}::{submodule} -> {}", uses.join(" "));
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{module}: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "cycles between submodules:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_sees_the_imports_it_checks() {
    let source = Crate::from_src();
    let graph = source.top_level_graph();
    assert!(graph["engine"].contains("policy"), "{:?}", graph["engine"]);
    assert!(graph["server"].contains("engine"), "{:?}", graph["server"]);
    // `Rule`, named through `policy/mod.rs`, is found in `contract.rs`.
    let policy = &source.submodule_graphs()["policy"];
    assert!(policy["registry"].contains("contract"), "{policy:?}");
}

/// The scanner itself, on small sources, so that it cannot pass by seeing nothing.
#[test]
fn the_scanner_follows_re_exports_and_groups_and_skips_strings_and_comments() {
    let source = Crate::from_sources(&[
        ("", "pub mod policy;"),
        (
            "policy",
            "mod contract;\nmod registry;\npub use contract::{Rule, Spec as Kind};\npub use registry::KINDS;",
        ),
        ("policy::contract", "use crate::policy::KINDS;\npub trait Rule {}\npub trait Spec {}"),
        (
            "policy::registry",
            "use crate::policy::{Action, Kind};\npub const KINDS: &[&str] = &[];\n\
             const HOME: &str = \"https://crate::view\"; // crate::engine\n/* crate::server */ \
             const QUOTE: char = '\"'; fn f<'a>(_: &'a str) { crate::budget::spend() }",
        ),
        ("budget", "use crate::{policy::{Action, Rule}, yaml};"),
    ]);
    let policy = &source.submodule_graphs()["policy"];
    assert_eq!(policy["contract"], BTreeSet::from(["registry".to_owned()]), "a name re-exported by mod.rs");
    assert_eq!(policy["registry"], BTreeSet::from(["contract".to_owned()]), "a re-export renamed with `as`");
    assert!(find_cycle(policy).is_some());
    let graph = source.top_level_graph();
    assert_eq!(graph["policy"], BTreeSet::from(["budget".to_owned()]), "nothing from strings or comments");
    assert_eq!(graph["budget"], BTreeSet::from(["policy".to_owned(), "yaml".to_owned()]), "a nested group");
    assert!(!source.is_module(&["policy".to_owned(), String::new()]));
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate's modules with their code (test code and comments removed), and
/// the names each module re-exports, pointing to where they are defined.
struct Crate {
    modules: BTreeMap<ModulePath, String>,
    re_exports: BTreeMap<ModulePath, BTreeMap<String, ModulePath>>,
}

impl Crate {
    /// The library under `src/`; `main.rs` is a crate of its own.
    fn from_src() -> Self {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = BTreeMap::new();
        for file in defender::paths::files_under(&src, &["rs"], defender::paths::Depth::Tree) {
            let file = file.expect("src/ can be listed");
            let relative = file.strip_prefix(&src).expect("a file under src/");
            let mut path: ModulePath = relative
                .iter()
                .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if path.last().is_some_and(|last| last == "mod") {
                path.pop();
            }
            match path.last().map(String::as_str) {
                Some("tests") | Some("main") => continue,
                Some("lib") if path.len() == 1 => path.clear(),
                _ => {}
            }
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            modules.insert(path, text);
        }
        Self::new(modules)
    }

    /// A crate of `(module, code)` pairs: `("policy::contract", "...")`, `""` the root.
    fn from_sources(sources: &[(&str, &str)]) -> Self {
        let path =
            |module: &str| module.split("::").filter(|part| !part.is_empty()).map(str::to_owned).collect();
        Self::new(sources.iter().map(|(module, text)| (path(module), (*text).to_owned())).collect())
    }

    fn new(texts: BTreeMap<ModulePath, String>) -> Self {
        let modules: BTreeMap<ModulePath, String> =
            texts.into_iter().map(|(path, text)| (path, non_test_code(&text))).collect();
        let mut source = Self { modules, re_exports: BTreeMap::new() };
        let mut re_exports = BTreeMap::new();
        for (module, code) in &source.modules {
            let names: BTreeMap<String, ModulePath> = re_exported(code)
                .into_iter()
                .filter_map(|(path, name)| Some((name, source.absolute(module, &path)?)))
                .collect();
            re_exports.insert(module.clone(), names);
        }
        source.re_exports = re_exports;
        source
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.modules.contains_key(path)
    }

    /// Which top-level modules each top-level module names.
    fn top_level_graph(&self) -> Graph {
        let mut graph = Graph::new();
        for (module, code) in &self.modules {
            let Some(top) = module.first() else { continue };
            if OUTSIDE.contains(&top.as_str()) {
                continue;
            }
            let uses = graph.entry(top.clone()).or_default();
            for used in self.paths_named(module, code, 1) {
                if used.first().is_some_and(|used| used != top) {
                    uses.insert(used[0].clone());
                }
            }
        }
        graph
    }

    /// For each module with submodules: which of its submodules each one names.
    fn submodule_graphs(&self) -> BTreeMap<String, Graph> {
        let mut graphs: BTreeMap<String, Graph> = BTreeMap::new();
        for (module, code) in &self.modules {
            let [top, submodule, ..] = module.as_slice() else { continue };
            let uses = graphs.entry(top.clone()).or_default().entry(submodule.clone()).or_default();
            for used in self.paths_named(module, code, 2) {
                let [used_top, used, ..] = used.as_slice() else { continue };
                if used_top == top && used != submodule && self.is_module(&[top.clone(), used.clone()]) {
                    uses.insert(used.clone());
                }
            }
        }
        graphs
    }

    /// Every `crate::` and `super::` path in the code of `module`, from the
    /// crate root, with a name re-exported by one of its first `depth`
    /// modules (the root, a top-level module) followed to where it is defined.
    fn paths_named(&self, module: &ModulePath, code: &str, depth: usize) -> Vec<ModulePath> {
        let mut paths = Vec::new();
        for start in path_starts(code) {
            for path in use_tree(&code[start..]) {
                if let Some(absolute) = self.absolute(module, &path) {
                    paths.push(self.resolve(absolute, depth));
                }
            }
        }
        paths
    }

    /// `path`, as written in `module`, from the crate root: `crate::a`,
    /// `super::a`, `self::a`, or `a` for a submodule `a`; `None` for another crate.
    fn absolute(&self, module: &ModulePath, path: &[String]) -> Option<ModulePath> {
        let first = path.first()?;
        match first.as_str() {
            "crate" => Some(path[1..].to_vec()),
            "self" => Some(module.iter().chain(&path[1..]).cloned().collect()),
            "super" => {
                let ups = path.iter().take_while(|part| *part == "super").count();
                let parent = module.get(..module.len().checked_sub(ups)?)?;
                Some(parent.iter().chain(&path[ups..]).cloned().collect())
            }
            _ => {
                let absolute: ModulePath = module.iter().chain(path).cloned().collect();
                self.is_module(&absolute[..=module.len()]).then_some(absolute)
            }
        }
    }

    /// `path` with a name re-exported by one of its first `depth` modules
    /// replaced by where that name comes from.
    fn resolve(&self, mut path: ModulePath, depth: usize) -> ModulePath {
        let mut at = 0;
        let mut hops = 0;
        while at < depth.min(path.len()) {
            if self.is_module(&path[..=at]) {
                at += 1;
                continue;
            }
            let Some(target) = self.re_exports.get(&path[..at]).and_then(|names| names.get(&path[at])) else {
                break;
            };
            hops += 1;
            assert!(hops < 16, "re-exports that go round: {path:?}");
            path = target.iter().chain(&path[at + 1..]).cloned().collect();
            at = 0;
        }
        path
    }
}

/// The code of a file before its `#[cfg(test)] mod tests`, without comments
/// and with every string and character literal emptied.
fn non_test_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let chars: Vec<char> = code.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let before = at(i.wrapping_sub(1));
        let raw_hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut open = 0;
            while i < chars.len() {
                match (chars[i], at(i + 1)) {
                    ('/', '*') => open += 1,
                    ('*', '/') => open -= 1,
                    _ => {
                        i += 1;
                        continue;
                    }
                }
                i += 2;
                if open == 0 {
                    break;
                }
            }
            out.push(' ');
        } else if c == 'r' && at(i + 1 + raw_hashes) == '"' && (!is_ident(before) || before == 'b') {
            // A raw string `r#"..."#` ends at a quote followed by as many `#`.
            i += 2 + raw_hashes;
            while i < chars.len()
                && !(chars[i] == '"'
                    && chars[i + 1..].iter().take_while(|c| **c == '#').count() >= raw_hashes)
            {
                i += 1;
            }
            i += 1 + raw_hashes;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A character literal, not a lifetime.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where a path that starts at `crate` or `super` begins in `code` (a
/// `super::super::` chain once).
fn path_starts(code: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    for word in ["crate::", "super::"] {
        for (at, _) in code.match_indices(word) {
            let before = code[..at].chars().next_back().unwrap_or(' ');
            if !is_ident(before) && before != ':' {
                starts.push(at);
            }
        }
    }
    starts
}

/// The paths the use tree (or plain path) at the start of `text` names:
/// `a::{b, c::{D, self}}` gives `a::b`, `a::c::D` and `a::c`.
fn use_tree(text: &str) -> Vec<ModulePath> {
    named_tree(&mut text.trim_start()).into_iter().map(|(path, _)| path).collect()
}

/// The paths a module's `pub use` items name as written, each with the
/// name it binds (an `as` name, or the last part).
fn re_exported(code: &str) -> Vec<(ModulePath, String)> {
    let mut names = Vec::new();
    for keyword in ["pub use ", "pub(crate) use "] {
        for (at, _) in code.match_indices(keyword) {
            names.extend(named_tree(&mut &code[at + keyword.len()..]));
        }
    }
    names
}

/// A use tree, parsed from the front of `text`: each path it names, with
/// the name it binds.
fn named_tree(text: &mut &str) -> Vec<(ModulePath, String)> {
    let mut prefix = ModulePath::new();
    loop {
        *text = text.trim_start();
        if let Some(rest) = text.strip_prefix('{') {
            *text = rest;
            let mut named = Vec::new();
            loop {
                let inner = named_tree(text);
                for (path, name) in inner {
                    let path: ModulePath =
                        prefix.iter().chain(path.iter().filter(|part| *part != "self")).cloned().collect();
                    let name = if name == "self" { prefix.last().cloned().unwrap_or_default() } else { name };
                    named.push((path, name));
                }
                *text = text.trim_start();
                match text.chars().next() {
                    Some(',') => *text = &text[1..],
                    Some('}') => {
                        *text = &text[1..];
                        break;
                    }
                    _ => break,
                }
            }
            return named;
        }
        if let Some(rest) = text.strip_prefix('*') {
            *text = rest;
            return Vec::new();
        }
        let length = text.find(|c: char| !is_ident(c)).unwrap_or(text.len());
        if length == 0 {
            return Vec::new();
        }
        prefix.push(text[..length].to_owned());
        *text = text[length..].trim_start();
        match text.strip_prefix("::") {
            Some(rest) => *text = rest,
            None => {
                let mut name = prefix.last().cloned().unwrap_or_default();
                if let Some(rest) = text.strip_prefix("as ") {
                    let rest = rest.trim_start();
                    let length = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                    name = rest[..length].to_owned();
                    *text = &rest[length..];
                }
                return vec![(prefix, name)];
            }
        }
    }
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
