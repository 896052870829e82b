//! The fuzz targets' checks (fuzz/src/), replayed on stable over every input
//! kept in fuzz/regressions/<target>/ (inputs that once broke an invariant
//! or reach an edge the fuzzer finds slowly, at least one per target) and over the repository's examples they are
//! seeded from. A folder that is missing or empty fails the test, so a
//! renamed folder cannot turn a replay into a replay of nothing.

#[path = "../fuzz/src/admission_review.rs"]
mod admission_review;
#[path = "../fuzz/src/ingress_host.rs"]
mod ingress_host;
#[path = "../fuzz/src/policy_file.rs"]
mod policy_file;

use std::path::{Path, PathBuf};

use defender::paths::{self, Depth};

/// The files in each directory under the repository root (those with one of
/// `extensions`, or all), in name order; panics when a directory is missing
/// or holds no such file.
fn inputs(dirs: &[&str], extensions: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        assert!(root.join(dir).is_dir(), "{dir} is not a directory");
        let found = paths::files_under(&root.join(dir), extensions, Depth::Flat);
        let before = files.len();
        files.extend(found.into_iter().map(|file| file.unwrap_or_else(|e| panic!("{e}"))));
        assert!(files.len() > before, "{dir} holds no input to replay");
    }
    files.sort();
    files
}

fn replay(files: &[PathBuf], check: fn(&[u8])) {
    for file in files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} breaks an invariant (the panic is printed above)", file.display());
        }
    }
}

#[test]
fn admission_reviews() {
    replay(&inputs(&["tests/fixtures"], &["json"]), admission_review::check);
    replay(&inputs(&["fuzz/regressions/admission_review"], &[]), admission_review::check);
}

#[test]
fn policy_files() {
    let examples =
        inputs(&["policies", "tests/policies/custom-policies", "tests/fixtures/bad-policies"], &["yaml"]);
    assert!(examples.len() >= 7, "policy examples went missing: {examples:?}");
    replay(&examples, policy_file::check);
    replay(&inputs(&["fuzz/regressions/policy_file"], &[]), policy_file::check);
}

#[test]
fn ingress_hosts() {
    // A flag byte (1: wildcard subdomains allowed) before the host.
    for host in ["app.example.com", "*", "*.example.com", "*.com", "", "a.*.com", " *.example.com. "] {
        for flag in [0u8, 1] {
            ingress_host::check(&[&[flag], host.as_bytes()].concat());
        }
    }
    replay(&inputs(&["fuzz/regressions/ingress_host"], &[]), ingress_host::check);
}
