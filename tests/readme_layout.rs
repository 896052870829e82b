//! README.md's "Layout" section names every module under src/ and every
//! top-level folder, and names nothing that does not exist, so a reader's map
//! of the repository cannot drift from it.

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The paths the Layout section lists: the first word of each indented line.
fn listed_paths() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let section = readme.split("\n## Layout\n").nth(1).expect("README.md has a Layout section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.contains('/'))
        .map(str::to_owned)
        .collect()
}

/// Entries of a folder of the repository, hidden ones and build output aside.
fn entries(dir: &str) -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path().is_dir()))
        .filter(|(name, _)| !name.starts_with('.') && name != "target")
        .collect();
    found.sort();
    found
}

#[test]
fn every_listed_path_exists() {
    for path in listed_paths() {
        assert!(
            Path::new(ROOT).join(&path).exists(),
            "README.md's Layout lists {path}, which does not exist"
        );
    }
}

#[test]
fn every_module_is_listed() {
    let listed = listed_paths();
    for (name, is_dir) in entries("src") {
        if name == "lib.rs" || name == "main.rs" {
            continue;
        }
        // A module is listed as its file or its folder, whichever holds its root.
        let module = name.trim_end_matches(".rs");
        let as_file = format!("src/{module}.rs");
        let as_dir = format!("src/{module}/");
        assert!(
            listed.contains(&as_file) || listed.contains(&as_dir),
            "README.md's Layout does not say what {} is for",
            if is_dir { as_dir } else { as_file }
        );
    }
}

#[test]
fn every_top_level_folder_is_listed() {
    let listed = listed_paths();
    for (name, is_dir) in entries(".") {
        if !is_dir || name == "src" {
            continue;
        }
        let folder = format!("{name}/");
        assert!(
            listed.iter().any(|path| path.starts_with(&folder)),
            "README.md's Layout does not say what {folder} is for"
        );
    }
}
