//! Writes the fuzz targets' seed corpora from the repository's own examples:
//! the AdmissionReview every policy-suite step sends (tests/policies,
//! tests/fixtures) and the fixture reviews; the policy files (policies/,
//! tests/, deploy/); the Ingress hosts the suites use. fuzz/run.sh runs it.
//!
//!     cargo run --example fuzz-seeds -- fuzz/seeds

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use defender::harness::{self, suite};
use defender::paths::{self, Depth};
use serde_json::Value;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).context("usage: fuzz-seeds OUT_DIR")?);
    let mut corpus = Corpus::default();
    for file in ok_files(&["tests/policies", "tests/fixtures"], &["yaml", "yml"]) {
        let text = std::fs::read_to_string(&file)?;
        if !suite::holds_suites(&text) {
            corpus.policy_files.push(text.into_bytes());
            continue;
        }
        // Some fixtures are broken on purpose (they test the harness's errors).
        let Ok(suites) = suite::read_file(&file) else { continue };
        for step in suites.iter().flat_map(|s| &s.cases).flat_map(|c| &c.steps) {
            let synthetic = harness::synthetic(step);
            // Malformed steps exist on purpose (failing-suite fixtures); they send nothing.
            if let Ok(review) = synthetic.to_review() {
                corpus.reviews.push(serde_json::to_vec_pretty(&review)?);
            }
            for object in [&synthetic.object, &synthetic.old_object].into_iter().flatten() {
                corpus.hosts.extend(hosts(object));
            }
        }
    }
    for file in ok_files(&["tests/fixtures"], &["json"]) {
        corpus.reviews.push(std::fs::read(file)?);
    }
    for file in ok_files(&["policies", "deploy/components/custom-policies/policies"], &["yaml"]) {
        corpus.policy_files.push(std::fs::read(file)?);
    }
    corpus.write(&out)?;
    println!(
        "{}: {} reviews, {} policy files, {} hosts",
        out.display(),
        corpus.reviews.len(),
        corpus.policy_files.len(),
        corpus.hosts.len()
    );
    Ok(())
}

#[derive(Default)]
struct Corpus {
    reviews: Vec<Vec<u8>>,
    policy_files: Vec<Vec<u8>>,
    hosts: Vec<String>,
}

impl Corpus {
    /// One directory per fuzz target, one file per input.
    fn write(&self, out: &Path) -> anyhow::Result<()> {
        // The host target reads a flag byte (wildcards allowed?) before the host.
        let hosts: Vec<Vec<u8>> = self
            .hosts
            .iter()
            .flat_map(|host| [0u8, 1].map(|flag| [&[flag], host.as_bytes()].concat()))
            .collect();
        for (target, inputs) in [
            ("admission_review", &self.reviews),
            ("policy_file", &self.policy_files),
            ("ingress_host", &hosts),
        ] {
            let dir = out.join(target);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for (index, input) in inputs.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{index:04}")), input)?;
            }
        }
        Ok(())
    }
}

fn ok_files(dirs: &[&str], extensions: &[&str]) -> Vec<PathBuf> {
    dirs.iter()
        .flat_map(|dir| paths::files_under(Path::new(dir), extensions, Depth::Tree))
        .filter_map(Result::ok)
        .collect()
}

/// The rule and TLS hosts of an Ingress.
fn hosts(object: &Value) -> Vec<String> {
    let spec = &object["spec"];
    let rules = spec["rules"].as_array().into_iter().flatten().map(|rule| &rule["host"]);
    let tls = spec["tls"].as_array().into_iter().flatten().flat_map(|tls| tls["hosts"].as_array()).flatten();
    rules.chain(tls).filter_map(Value::as_str).map(str::to_owned).collect()
}
