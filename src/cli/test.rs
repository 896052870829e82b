//! `defender test`: runs policy suites and reports in text, JSON or JUnit XML.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::junit::{self, Problem, ProblemKind};
use super::output::Format;
use crate::engine::Outcome;
use crate::harness::{self, CaseReport, Report, StepReport, SuiteReport};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Suite files, or directories searched for them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also show what Defender answered for passing cases (text output).
    #[arg(short, long)]
    verbose: bool,
    /// The report format; the exit code is the same for each.
    #[arg(short, long, value_enum, default_value_t, value_name = "FORMAT")]
    output: Format,
}

impl TestArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let report = harness::judge(&self.paths);
        let out = &mut std::io::stdout().lock();
        match self.output {
            Format::Text => harness::write_text(&report, self.verbose, out)?,
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&json(&report))?)?,
            Format::Junit => junit(&report).write(out)?,
        }
        Ok(if report.summary().succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

/// `defender test --output json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    passed: usize,
    failed: usize,
    suites: Vec<JsonSuite<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSuite<'a> {
    file: String,
    /// `None` for a file that could not be read.
    suite: Option<&'a str>,
    policies: &'a str,
    error: Option<&'a str>,
    cases: Vec<JsonCase<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonCase<'a> {
    case: &'a str,
    outcome: &'static str,
    message: Option<&'a str>,
    duration_seconds: f64,
    steps: Vec<JsonStep<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonStep<'a> {
    at: String,
    operation: &'static str,
    expected: Outcome,
    expected_message: Option<&'a str>,
    policy: Option<&'a str>,
    actual: Option<Outcome>,
    fired_policies: &'a [String],
    message: Option<&'a str>,
    outcome: &'static str,
}

fn outcome(passed: bool) -> &'static str {
    if passed { "passed" } else { "failed" }
}

fn json(report: &Report) -> JsonReport<'_> {
    let summary = report.summary();
    JsonReport {
        passed: summary.passed,
        failed: summary.failed,
        suites: report.suites.iter().map(json_suite).collect(),
    }
}

fn json_suite(suite: &SuiteReport) -> JsonSuite<'_> {
    JsonSuite {
        file: suite.file.display().to_string(),
        suite: suite.name.as_deref(),
        policies: &suite.policies,
        error: suite.error.as_deref(),
        cases: suite.cases.iter().map(json_case).collect(),
    }
}

fn json_case(case: &CaseReport) -> JsonCase<'_> {
    JsonCase {
        case: &case.name,
        outcome: outcome(case.passed()),
        message: case.failure.as_deref(),
        duration_seconds: case.duration.as_secs_f64(),
        steps: case.steps.iter().map(json_step).collect(),
    }
}

fn json_step(step: &StepReport) -> JsonStep<'_> {
    JsonStep {
        at: crate::clock::human(step.at),
        operation: step.operation,
        expected: step.expected,
        expected_message: step.expected_message.as_deref(),
        policy: step.expected_policy.as_deref(),
        actual: step.actual,
        fired_policies: &step.fired_policies,
        message: step.message.as_deref(),
        outcome: outcome(step.passed),
    }
}

/// `defender test --output junit`: a testsuite per TestSuite, a testcase per
/// case; a suite file that cannot be read is a testsuite with one error.
fn junit(report: &Report) -> junit::TestSuites {
    let suites = report.suites.iter().map(|suite| {
        let file = suite.file.display().to_string();
        let Some(name) = &suite.name else {
            let error = suite.error.clone().unwrap_or_default();
            return junit::TestSuite {
                name: file.clone(),
                file: Some(file.clone()),
                properties: Vec::new(),
                cases: vec![junit::TestCase {
                    name: file.clone(),
                    classname: file.clone(),
                    file: Some(file),
                    time: None,
                    problem: Some(Problem {
                        kind: ProblemKind::Error,
                        message: first_line(&error),
                        r#type: "unreadable suite".to_owned(),
                        body: error,
                    }),
                    system_out: None,
                }],
            };
        };
        junit::TestSuite {
            name: name.clone(),
            file: Some(file.clone()),
            properties: vec![("policies".to_owned(), suite.policies.clone())],
            cases: suite.cases.iter().map(|case| junit_case(case, name, &file)).collect(),
        }
    });
    junit::TestSuites { name: "defender test".to_owned(), suites: suites.collect() }
}

fn junit_case(case: &CaseReport, suite: &str, file: &str) -> junit::TestCase {
    let answers = harness::case_answers(case);
    // A case fails on a wrong answer (its last step was judged and did not
    // match) or because it cannot be run as written.
    let judged = case.steps.last().is_some_and(|step| step.actual.is_some() && !step.passed);
    let problem = case.failure.as_ref().map(|failure| Problem {
        kind: ProblemKind::Failure,
        message: first_line(failure),
        r#type: if judged { "unexpected answer" } else { "invalid case" }.to_owned(),
        body: failure.clone(),
    });
    junit::TestCase {
        name: case.name.clone(),
        classname: suite.to_owned(),
        file: Some(file.to_owned()),
        time: Some(case.duration),
        problem,
        system_out: (!answers.is_empty()).then(|| answers.join("\n")),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}
