//! `defender test`: runs policy test suites without a cluster.
//!
//! Each case gets a freshly built policy set, so budgets never leak from one
//! case into the next; the steps of one case share it, at simulated times.
//! Requests are built as the API server would send them and judged by the same
//! engine the server uses.

pub mod suite;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::clock;
use crate::config::{self, EMBEDDED_ORIGIN};
use crate::engine::{Decision, Engine};
use crate::paths;
use crate::request::Request;
use crate::synthetic::{Synthetic, SyntheticOperation, User};
use suite::{Case, Expect, Operation, PolicySource, Step, Suite};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

impl Summary {
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// Runs the suites found at `paths` (files, or directories searched for
/// TestSuite documents) and writes one line per case to `out`. With `verbose`,
/// passing cases also show what Defender answered.
pub fn run(paths: &[PathBuf], verbose: bool, out: &mut dyn Write) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for file in suite_files(paths) {
        let suites = match file {
            Ok(file) => suite::read_file(&file),
            Err(error) => Err(error),
        };
        match suites {
            Ok(suites) => {
                for suite in &suites {
                    run_suite(suite, verbose, out, &mut summary)?;
                }
            }
            Err(error) => {
                writeln!(out, "FAIL  {error}")?;
                summary.failed += 1;
            }
        }
    }
    if summary.passed + summary.failed == 0 {
        writeln!(out, "no test suites found in {}", show_paths(paths))?;
    }
    writeln!(out, "{} passed, {} failed", summary.passed, summary.failed)?;
    Ok(summary)
}

fn run_suite(suite: &Suite, verbose: bool, out: &mut dyn Write, summary: &mut Summary) -> io::Result<()> {
    let policies = match &suite.policies {
        PolicySource::Embedded => Ok((config::embedded_files(), EMBEDDED_ORIGIN.to_owned())),
        PolicySource::Path(path) => config::read_path(path).map(|files| (files, path.display().to_string())),
    };
    writeln!(out, "{}: {} ({})", suite.file.display(), suite.name, policies_label(&suite.policies))?;
    for case in &suite.cases {
        let outcome = match &policies {
            Ok((files, origin)) => run_case(suite, case, files, origin),
            Err(error) => Err(Failure::plain(error.to_string())),
        };
        match outcome {
            Ok(answers) => {
                summary.passed += 1;
                writeln!(out, "  ok    {}", case.name)?;
                if verbose {
                    for answer in answers {
                        writeln!(out, "        {answer}")?;
                    }
                }
            }
            Err(failure) => {
                summary.failed += 1;
                writeln!(out, "  FAIL  {}", case.name)?;
                for line in failure.to_string().lines() {
                    writeln!(out, "        {line}")?;
                }
            }
        }
    }
    Ok(())
}

fn policies_label(source: &PolicySource) -> String {
    match source {
        PolicySource::Embedded => "embedded policies".to_owned(),
        PolicySource::Path(path) => format!("policies {}", path.display()),
    }
}

/// Why a case failed, and at which step.
#[derive(Debug)]
struct Failure {
    step: Option<String>,
    reason: String,
}

impl Failure {
    fn plain(reason: String) -> Self {
        Self { step: None, reason }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{step}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Runs one case; on success returns a line per step describing the answer.
fn run_case(
    suite: &Suite,
    case: &Case,
    files: &[(String, String)],
    origin: &str,
) -> Result<Vec<String>, Failure> {
    if let Some(error) = &case.error {
        return Err(Failure::plain(error.clone()));
    }
    let set = config::from_files(files, origin).map_err(|e| Failure::plain(e.to_string()))?;
    let engine = Engine::new(set);
    let view = case.cluster.as_ref().unwrap_or(&suite.cluster);
    let mut elapsed = Duration::ZERO;
    let mut answers = Vec::with_capacity(case.steps.len());
    for (index, step) in case.steps.iter().enumerate() {
        let at = step.at.map_or(elapsed, |at| at.0);
        let step_label =
            || (case.steps.len() > 1).then(|| format!("step {} (at {})", index + 1, clock::human(at)));
        let fail = |reason: String| Failure { step: step_label(), reason };
        if at < elapsed {
            return Err(fail(format!(
                "goes back in time (the previous step was at {})",
                clock::human(elapsed)
            )));
        }
        elapsed = at;
        let request = build_request(step).map_err(fail)?;
        let decision = engine.review(&request, &engine.context(clock::add(suite.start, at), view));
        check(step, &decision).map_err(fail)?;
        let answer = describe(&decision);
        answers.push(match step_label() {
            Some(label) => format!("{label}: {answer}"),
            None => answer,
        });
    }
    Ok(answers)
}

fn build_request(step: &Step) -> Result<Request, String> {
    synthetic(step).build().map_err(|e| e.to_string())
}

/// The request a step sends, as the API server would build it.
pub fn synthetic(step: &Step) -> Synthetic {
    let operation = match (step.operation, step.collection) {
        (Operation::Create, _) => SyntheticOperation::Create,
        (Operation::Update, _) => SyntheticOperation::Update,
        (Operation::Delete, false) => SyntheticOperation::Delete,
        (Operation::Delete, true) if step.resource.is_some() => SyntheticOperation::DeleteCollection,
        (Operation::Delete, true) => SyntheticOperation::DeleteCollectionItem,
    };
    let mut synthetic = Synthetic::new(operation);
    if step.operation == Operation::Delete {
        // The deleted object reaches a webhook as oldObject; suites may write either.
        synthetic.old_object = step.old_object.clone().or_else(|| step.object.clone());
    } else {
        synthetic.object = step.object.clone();
        synthetic.old_object = step.old_object.clone();
    }
    if let Some(user) = &step.user_info {
        synthetic.user = User { username: user.username.clone(), groups: user.groups.clone() };
    }
    if let Some(resource) = &step.resource {
        synthetic.api_version_kind = Some((resource.api_version.clone(), resource.kind.clone()));
        synthetic.namespace = resource.namespace.clone();
    }
    synthetic.dry_run = step.dry_run;
    synthetic.sub_resource = step.sub_resource.clone();
    synthetic
}

fn check(step: &Step, decision: &Decision) -> Result<(), String> {
    let verdict = decision.verdict();
    if verdict != step.expect.as_str() {
        return Err(format!("expected {}, got {}", step.expect.as_str(), describe(decision)));
    }
    if let Some(wanted) = &step.message {
        let said = match step.expect {
            Expect::Deny => decision.denial_message().unwrap_or_default(),
            Expect::Warn | Expect::Allow => decision.warnings().join("\n"),
        };
        if !said.contains(wanted.as_str()) {
            return Err(format!("expected the message to contain {wanted:?}, got {}", describe(decision)));
        }
    }
    if let Some(policy) = &step.policy
        && !decision.fired_policies().contains(&policy.as_str())
    {
        return Err(format!("expected policy {policy} to fire, got {}", describe(decision)));
    }
    Ok(())
}

/// `deny: defender/...`, `warn: ...`, `allow`, or `allow (skipped: ...)`.
fn describe(decision: &Decision) -> String {
    match decision.verdict() {
        "deny" => format!("deny: {}", decision.denial_message().unwrap_or_default()),
        "warn" => format!("warn: {}", decision.warnings().join(" | ")),
        _ => match &decision.skipped {
            Some(skip) => format!("allow (not judged: {})", skip.as_str()),
            None => "allow".to_owned(),
        },
    }
}

/// Suite files in `paths`: files as given, directories searched recursively
/// (in name order) for YAML files that hold TestSuite documents.
fn suite_files(paths: &[PathBuf]) -> Vec<Result<PathBuf, String>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let holds_suites = |file: &Result<PathBuf, String>| match file {
                Ok(file) => std::fs::read_to_string(file).is_ok_and(|text| suite::holds_suites(&text)),
                Err(_) => true,
            };
            files.extend(paths::files_under(path, &["yaml", "yml"]).into_iter().filter(holds_suites));
        } else if path.exists() {
            files.push(Ok(path.clone()));
        } else {
            files.push(Err(format!("{}: no such file or directory", path.display())));
        }
    }
    files
}

fn show_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
