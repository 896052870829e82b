//! `defender check`: judges manifests on disk as CREATE (or DELETE) requests,
//! so a CI pipeline learns before `kubectl apply` what Defender would refuse.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::junit::{self, Problem, ProblemKind};
use super::output::Format;
use super::{PolicyArgs, USAGE};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, PolicySet};
use crate::engine::{Decision, Engine};
use crate::manifests::{self, Manifest};
use crate::request::{Operation, Request, User};
use crate::synthetic::Synthetic;
use crate::view::MemoryView;
use crate::webhooks::{self, Options};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// Manifest files or directories (.yaml, .yml, .json; `kind: List` is unpacked).
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE_OR_DIR")]
    files: Vec<PathBuf>,
    /// Judge the manifests as creations or as deletions.
    #[arg(long, default_value = "create", ignore_case = true, value_parser = operation_parser())]
    operation: Operation,
    /// Namespace for objects that name none, as kubectl would default it.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The user the requests come from.
    #[arg(long, default_value = "developer@example.com")]
    user: String,
    /// The user's groups (repeatable).
    #[arg(long = "group", default_value = "system:authenticated")]
    groups: Vec<String>,
    /// The ValidatingWebhookConfiguration the cluster runs (YAML; kustomize
    /// output works): warns on stderr about what the policies judge but it
    /// never sends Defender [default: the one deploy/ ships, for the
    /// embedded policies].
    #[arg(long, value_name = "FILE")]
    webhook_config: Option<PathBuf>,
    /// The report format; the exit code is the same for each.
    #[arg(short, long, value_enum, default_value_t, value_name = "FORMAT")]
    output: Format,
}

/// What `check` found for one object, in the order they were read.
struct Checked {
    file: String,
    origin: String,
    /// The request and Defender's decision, or why there is none.
    judged: Result<(Request, Decision), String>,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let set = self.policies.load()?;
        self.warn_unrouted(&set)?;
        let checked = self.judge(Engine::new(set));
        let out = &mut std::io::stdout().lock();
        match self.output {
            Format::Text => write_text(&checked, out)?,
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&json(&checked))?)?,
            Format::Junit => junit(&checked).write(out)?,
        }
        let counts = Counts::of(&checked);
        Ok(match (counts.unusable, counts.denied) {
            (0, 0) => ExitCode::SUCCESS,
            (0, _) => ExitCode::FAILURE,
            _ => ExitCode::from(USAGE),
        })
    }

    /// Judges every manifest; what cannot be read comes first, as it is found.
    fn judge(&self, engine: Engine) -> Vec<Checked> {
        let mut checked = Vec::new();
        let mut readable = Vec::new();
        for path in &self.files {
            for manifest in manifests::read(path) {
                match manifest {
                    Ok(manifest) => readable.push(manifest),
                    Err(unusable) => checked.push(Checked {
                        file: unusable.file,
                        origin: String::new(),
                        judged: Err(unusable.message),
                    }),
                }
            }
        }
        // Namespaces in the input stand for the cluster's: their labels count
        // for the objects inside them, as they would once applied.
        let namespaces = namespace_view(&readable);
        let now = SystemClock.now();
        for manifest in readable {
            let judged = match self.request_for(&manifest.object) {
                Ok(request) => {
                    let decision = engine.decide(&request, &engine.context(now, &namespaces));
                    Ok((request, decision))
                }
                Err(error) => Err(format!("{}: {error}", manifest.origin)),
            };
            checked.push(Checked { file: manifest.file, origin: manifest.origin, judged });
        }
        checked
    }

    /// Warns about what the policies need that the webhook configuration does
    /// not route: the API server would never send it, so it would pass.
    fn warn_unrouted(&self, set: &PolicySet) -> anyhow::Result<()> {
        let (configuration, which) = match &self.webhook_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--webhook-config {}", path.display()))?;
                let configuration = webhooks::parse(&text)
                    .map_err(|error| anyhow::anyhow!("--webhook-config {}: {error}", path.display()))?;
                (configuration, path.display().to_string())
            }
            None => {
                let embedded = config::load_embedded()?;
                let deployed =
                    webhooks::configuration(&embedded.policies, &embedded.settings, &Options::default());
                (deployed, "the default webhook configuration (deploy/base)".to_owned())
            }
        };
        let unrouted = webhooks::unrouted(&set.policies, &configuration);
        if unrouted.is_empty() {
            return Ok(());
        }
        let err = &mut std::io::stderr().lock();
        for line in &unrouted {
            writeln!(err, "warning: {line}")?;
        }
        let policies = self
            .policies
            .policies
            .as_ref()
            .map(|p| format!(" --policies {}", p.display()))
            .unwrap_or_default();
        writeln!(
            err,
            "warning: {which} does not send Defender these requests, so they are never judged: \
             regenerate it with `defender webhook-config{policies}`"
        )?;
        Ok(())
    }

    fn request_for(&self, object: &Value) -> Result<Request, String> {
        let mut object = object.clone();
        let cluster_scoped = object.get("kind").and_then(Value::as_str) == Some("Namespace");
        if !cluster_scoped && object.pointer("/metadata/namespace").is_none() {
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("namespace".to_owned(), Value::String(self.namespace.clone()));
            }
        }
        let mut synthetic = Synthetic::new(self.operation.clone());
        if self.operation == Operation::Delete {
            synthetic.old_object = Some(object);
        } else {
            synthetic.object = Some(object);
        }
        synthetic.user = User { username: self.user.clone(), groups: self.groups.clone() };
        synthetic.build().map_err(|e| e.to_string())
    }
}

/// `--operation`: `create` or `delete`, in any case.
fn operation_parser() -> impl TypedValueParser<Value = Operation> {
    PossibleValuesParser::new(["create", "delete"])
        .map(|name| if name.eq_ignore_ascii_case("delete") { Operation::Delete } else { Operation::Create })
}

#[derive(Debug, Default)]
struct Counts {
    objects: usize,
    allowed: usize,
    denied: usize,
    unusable: usize,
}

impl Counts {
    fn of(checked: &[Checked]) -> Self {
        let mut counts = Counts::default();
        for item in checked {
            match &item.judged {
                Ok((_, decision)) if decision.allowed() => counts.allowed += 1,
                Ok(_) => counts.denied += 1,
                Err(_) => counts.unusable += 1,
            }
            // Objects read, whether or not a request could be made of them.
            if !item.origin.is_empty() {
                counts.objects += 1;
            }
        }
        counts
    }
}

/// The denial, else the warnings: what a user reads in kubectl.
fn details(decision: &Decision) -> Vec<String> {
    decision.denial_message().map(|m| vec![m]).unwrap_or_else(|| decision.warnings())
}

fn write_text(checked: &[Checked], out: &mut dyn Write) -> std::io::Result<()> {
    for item in checked {
        let (request, decision) = match &item.judged {
            Ok(judged) => judged,
            Err(error) => {
                writeln!(out, "error  {error}")?;
                continue;
            }
        };
        writeln!(out, "{:<5}  {} ({})", decision.outcome(), request.describe(), item.origin)?;
        for line in details(decision).iter().flat_map(|d| d.lines()) {
            writeln!(out, "       {line}")?;
        }
    }
    let counts = Counts::of(checked);
    writeln!(
        out,
        "{} objects: {} allowed, {} denied, {} unusable",
        counts.objects, counts.allowed, counts.denied, counts.unusable
    )
}

/// The objects grouped by file, files in the order they were first read.
fn by_file(checked: &[Checked]) -> Vec<(&str, Vec<&Checked>)> {
    let mut files: Vec<(&str, Vec<&Checked>)> = Vec::new();
    for item in checked {
        match files.iter_mut().find(|(file, _)| *file == item.file) {
            Some((_, group)) => group.push(item),
            None => files.push((&item.file, vec![item])),
        }
    }
    files
}

fn json(checked: &[Checked]) -> Value {
    let counts = Counts::of(checked);
    let files: Vec<Value> = by_file(checked)
        .into_iter()
        .map(|(file, checked)| {
            let results: Vec<Value> = checked.into_iter().map(json_result).collect();
            json!({"file": file, "results": results})
        })
        .collect();
    json!({
        "objects": counts.objects,
        "allowed": counts.allowed,
        "denied": counts.denied,
        "unusable": counts.unusable,
        "files": files,
    })
}

fn json_result(item: &Checked) -> Value {
    let origin = if item.origin.is_empty() { &item.file } else { &item.origin };
    let (request, decision) = match &item.judged {
        Ok(judged) => judged,
        Err(error) => return json!({"origin": origin, "verdict": "unusable", "error": error}),
    };
    let findings: Vec<Value> = decision
        .findings
        .iter()
        .map(|finding| {
            json!({
                "policy": finding.policy,
                "action": finding.action.as_str(),
                "reason": finding.violation.reason,
                "remedy": finding.violation.remedy,
                "message": finding.message(),
            })
        })
        .collect();
    let details = details(decision);
    json!({
        "origin": origin,
        "object": request.describe().to_string(),
        "operation": request.operation(),
        "kind": request.kind(),
        "namespace": request.namespace(),
        "name": request.name(),
        "verdict": decision.outcome(),
        "message": (!details.is_empty()).then(|| details.join("\n")),
        "findings": findings,
    })
}

/// A testsuite per file, a testcase per object: a denial is a failure, an
/// unusable document an error, warnings are the case's output.
fn junit(checked: &[Checked]) -> junit::TestSuites {
    let suites = by_file(checked).into_iter().map(|(file, checked)| junit::TestSuite {
        name: file.to_owned(),
        file: Some(file.to_owned()),
        properties: Vec::new(),
        cases: checked.into_iter().map(junit_case).collect(),
    });
    junit::TestSuites { name: "defender check".to_owned(), suites: suites.collect() }
}

fn junit_case(item: &Checked) -> junit::TestCase {
    let mut case = junit::TestCase {
        name: if item.origin.is_empty() { item.file.clone() } else { item.origin.clone() },
        classname: item.file.clone(),
        file: Some(item.file.clone()),
        time: None,
        problem: None,
        system_out: None,
    };
    match &item.judged {
        Err(error) => {
            case.problem = Some(Problem {
                kind: ProblemKind::Error,
                message: error.clone(),
                r#type: "unusable".to_owned(),
                body: error.clone(),
            });
        }
        Ok((request, decision)) => {
            case.name = format!("{} ({})", request.describe(), item.origin);
            let details = details(decision).join("\n");
            if let Some(denial) = decision.denial_message() {
                case.problem = Some(Problem {
                    kind: ProblemKind::Failure,
                    message: denial.lines().next().unwrap_or_default().to_owned(),
                    r#type: "denied".to_owned(),
                    body: denial,
                });
            } else if !details.is_empty() {
                case.system_out = Some(details);
            }
        }
    }
    case
}

fn namespace_view(manifests: &[Manifest]) -> MemoryView {
    let mut view = MemoryView::default();
    let namespaces =
        manifests.iter().filter(|m| m.object.get("kind").and_then(Value::as_str) == Some("Namespace"));
    for manifest in namespaces {
        // One that cannot be read is reported when it is judged itself.
        let _ = view.add_manifest(&manifest.object);
    }
    view
}
