//! `defender test`: runs policy test suites without a cluster.
//!
//! Each case gets a freshly built policy set, so budgets never leak from one
//! case into the next; the steps of one case share it, at simulated times.
//! Requests are built as the API server would send them and judged by the same
//! engine the server uses.

pub mod suite;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::clock;
use crate::config::{self, EMBEDDED_ORIGIN};
use crate::engine::{Decision, Engine, Outcome};
use crate::paths::{self, Depth, ListError};
use crate::request::{Operation, Request};
use crate::routing::operation_name;
use crate::synthetic::Synthetic;
use suite::{Case, PolicySource, Step, Suite};

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

/// Everything a run found, in the order it ran: what `--output` renders.
#[derive(Debug)]
pub struct Report {
    /// The paths the run was given, for "no test suites found in ...".
    pub paths: Vec<PathBuf>,
    pub suites: Vec<SuiteReport>,
}

/// One TestSuite document, or a suite file that could not be read.
#[derive(Debug)]
pub struct SuiteReport {
    pub file: PathBuf,
    /// `metadata.name`; `None` when the file could not be read.
    pub name: Option<String>,
    /// `embedded policies` or `policies <path>`.
    pub policies: String,
    /// Why the file could not be read; it then counts as one failure.
    pub error: Option<String>,
    pub cases: Vec<CaseReport>,
}

#[derive(Debug)]
pub struct CaseReport {
    pub name: String,
    pub duration: Duration,
    /// The steps judged, up to and including a failing one.
    pub steps: Vec<StepReport>,
    /// Why the case failed (`step 2 (at 1s): expected deny, got allow`).
    pub failure: Option<String>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// One request of a case: what the suite expected and what Defender answered.
#[derive(Debug)]
pub struct StepReport {
    /// Offset from the suite's start time.
    pub at: Duration,
    pub operation: &'static str,
    pub expected: Outcome,
    pub expected_message: Option<String>,
    pub expected_policy: Option<String>,
    /// `None` when the request could not be built.
    pub actual: Option<Outcome>,
    pub fired_policies: Vec<String>,
    /// The denial message, or the warnings one per line.
    pub message: Option<String>,
    /// `deny: defender/...`, `allow (not judged: ...)`: as the text output shows it.
    pub answer: Option<String>,
    pub passed: bool,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for suite in &self.suites {
            if suite.error.is_some() {
                summary.failed += 1;
            }
            for case in &suite.cases {
                if case.passed() { summary.passed += 1 } else { summary.failed += 1 }
            }
        }
        summary
    }
}

/// Runs the suites found at `paths` (files, or directories searched for
/// TestSuite documents) and reports every case.
pub fn judge(paths: &[PathBuf]) -> Report {
    let mut suites = Vec::new();
    for file in suite_files(paths) {
        let read = match file {
            Ok(file) => suite::read_file(&file).map_err(|error| (file, error)),
            Err((file, error)) => Err((file, error)),
        };
        match read {
            Ok(read) => suites.extend(read.iter().map(run_suite)),
            Err((file, error)) => suites.push(SuiteReport {
                file,
                name: None,
                policies: String::new(),
                error: Some(error),
                cases: Vec::new(),
            }),
        }
    }
    Report { paths: paths.to_vec(), suites }
}

/// The text `defender test` prints: a line per case, failures with their
/// reasons. With `verbose`, passing cases also show what Defender answered.
pub fn write_text(report: &Report, verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    for suite in &report.suites {
        let Some(name) = &suite.name else {
            writeln!(out, "FAIL  {}", suite.error.as_deref().unwrap_or_default())?;
            continue;
        };
        writeln!(out, "{}: {name} ({})", suite.file.display(), suite.policies)?;
        for case in &suite.cases {
            match &case.failure {
                None => {
                    writeln!(out, "  ok    {}", case.name)?;
                    if verbose {
                        for answer in case_answers(case) {
                            writeln!(out, "        {answer}")?;
                        }
                    }
                }
                Some(failure) => {
                    writeln!(out, "  FAIL  {}", case.name)?;
                    for line in failure.lines() {
                        writeln!(out, "        {line}")?;
                    }
                }
            }
        }
    }
    let summary = report.summary();
    if summary.passed + summary.failed == 0 {
        writeln!(out, "no test suites found in {}", show_paths(&report.paths))?;
    }
    writeln!(out, "{} passed, {} failed", summary.passed, summary.failed)
}

/// A line per step: what Defender answered, labelled with the step when there are several.
pub fn case_answers(case: &CaseReport) -> Vec<String> {
    let several = case.steps.len() > 1;
    let answers = case.steps.iter().enumerate().filter_map(|(index, step)| {
        let answer = step.answer.as_deref()?;
        Some(if several { format!("{}: {answer}", step_label(index, step.at)) } else { answer.to_owned() })
    });
    answers.collect()
}

fn step_label(index: usize, at: Duration) -> String {
    format!("step {} (at {})", index + 1, clock::human(at))
}

fn run_suite(suite: &Suite) -> SuiteReport {
    let policies = match &suite.policies {
        PolicySource::Embedded => Ok((config::embedded_files(), EMBEDDED_ORIGIN.to_owned())),
        PolicySource::Path(path) => config::read_path(path).map(|files| (files, path.display().to_string())),
    };
    let cases = suite
        .cases
        .iter()
        .map(|case| {
            let started = Instant::now();
            let mut steps = Vec::new();
            let outcome = match &policies {
                Ok((files, origin)) => run_case(suite, case, files, origin, &mut steps),
                Err(error) => Err(Failure::plain(error.to_string())),
            };
            CaseReport {
                name: case.name.clone(),
                duration: started.elapsed(),
                steps,
                failure: outcome.err().map(|failure| failure.to_string()),
            }
        })
        .collect();
    SuiteReport {
        file: suite.file.clone(),
        name: Some(suite.name.clone()),
        policies: policies_label(&suite.policies),
        error: None,
        cases,
    }
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

/// Runs one case, recording each step it judges in `steps`.
fn run_case(
    suite: &Suite,
    case: &Case,
    files: &[(String, String)],
    origin: &str,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    if let Some(error) = &case.error {
        return Err(Failure::plain(error.clone()));
    }
    let set = config::from_files(files, origin).map_err(|e| Failure::plain(e.to_string()))?;
    let engine = Engine::new(set);
    let view = case.cluster.as_ref().unwrap_or(&suite.cluster);
    let mut elapsed = Duration::ZERO;
    for (index, step) in case.steps.iter().enumerate() {
        let at = step.at.map_or(elapsed, |at| at.0);
        let step_label = || (case.steps.len() > 1).then(|| step_label(index, at));
        let fail = |reason: String| Failure { step: step_label(), reason };
        if at < elapsed {
            return Err(fail(format!(
                "goes back in time (the previous step was at {})",
                clock::human(elapsed)
            )));
        }
        elapsed = at;
        let mut report = StepReport {
            at,
            operation: operation_name(&step.operation),
            expected: step.expect,
            expected_message: step.message.clone(),
            expected_policy: step.policy.clone(),
            actual: None,
            fired_policies: Vec::new(),
            message: None,
            answer: None,
            passed: false,
        };
        let request = match build_request(step) {
            Ok(request) => request,
            Err(error) => {
                steps.push(report);
                return Err(fail(error));
            }
        };
        let decision = engine.decide(&request, &engine.context(clock::add(suite.start, at), view));
        let checked = check(step, &decision);
        report.actual = Some(decision.outcome());
        report.fired_policies = decision.fired_policies().into_iter().map(str::to_owned).collect();
        report.message = decision.denial_message().or_else(|| {
            let warnings = decision.warnings();
            (!warnings.is_empty()).then(|| warnings.join("\n"))
        });
        report.answer = Some(describe(&decision));
        report.passed = checked.is_ok();
        steps.push(report);
        checked.map_err(fail)?;
    }
    Ok(())
}

fn build_request(step: &Step) -> Result<Request, String> {
    synthetic(step).build().map_err(|e| e.to_string())
}

/// The request a step sends, as the API server would build it.
pub fn synthetic(step: &Step) -> Synthetic {
    let mut synthetic = Synthetic::new(step.operation.clone());
    if step.operation == Operation::Delete {
        synthetic.collection = step.collection;
        // The deleted object reaches a webhook as oldObject; suites may write either.
        synthetic.old_object = step.old_object.clone().or_else(|| step.object.clone());
    } else {
        synthetic.object = step.object.clone();
        synthetic.old_object = step.old_object.clone();
    }
    if let Some(user) = &step.user_info {
        synthetic.user = user.clone();
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
    if decision.outcome() != step.expect {
        return Err(format!("expected {}, got {}", step.expect, describe(decision)));
    }
    if let Some(wanted) = &step.message {
        let said = match step.expect {
            Outcome::Deny => decision.denial_message().unwrap_or_default(),
            Outcome::Warn | Outcome::Allow => decision.warnings().join("\n"),
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

/// `deny: defender/...`, `warn: ...`, `allow`, or `allow (not judged: ...)`.
fn describe(decision: &Decision) -> String {
    match decision.outcome() {
        Outcome::Deny => format!("deny: {}", decision.denial_message().unwrap_or_default()),
        Outcome::Warn => format!("warn: {}", decision.warnings().join(" | ")),
        Outcome::Allow => match &decision.skipped {
            Some(skip) => format!("allow (not judged: {})", skip.as_str()),
            None => "allow".to_owned(),
        },
    }
}

/// Suite files in `paths`: files as given, directories searched recursively
/// (in name order) for YAML files that hold TestSuite documents.
/// An error names the path it is about.
fn suite_files(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let holds_suites = |file: &Result<PathBuf, ListError>| match file {
                Ok(file) => std::fs::read_to_string(file).is_ok_and(|text| suite::holds_suites(&text)),
                Err(_) => true,
            };
            let found =
                paths::files_under(path, &["yaml", "yml"], Depth::Tree).into_iter().filter(holds_suites);
            files.extend(found.map(|file| file.map_err(|error| (path.clone(), error.to_string()))));
        } else if path.exists() {
            files.push(Ok(path.clone()));
        } else {
            files.push(Err((path.clone(), format!("{}: no such file or directory", path.display()))));
        }
    }
    files
}

fn show_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
