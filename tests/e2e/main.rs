//! End-to-end: Defender in a real API server's admission path, judged by
//! what kubectl users see (exit codes and stderr).
//!
//! Needs E2E_BIN_DIR (kube-apiserver, kube-controller-manager, etcd, kubectl),
//! which `bash tests/run.sh` builds once and caches. Runs each scenario in
//! order, prints one line per scenario and `N passed, N failed`.
//! `E2E_ONLY=<text>|<text>` runs only the scenarios whose name contains one of them.

mod audit;
mod coordination;
mod delete_protection;
mod env;
mod hosts_scale;
mod hosts_scope;
mod scenarios;
mod server_limits;
mod ways_around;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use env::{Cluster, Defender};

pub struct World {
    pub cluster: Cluster,
    pub defender: Defender,
    /// Defender processes sharing one budget, started by a scenario.
    pub replicas: Vec<Defender>,
    pub repo: &'static Path,
}

fn main() -> ExitCode {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::Builder::new().prefix("defender-e2e-").tempdir().expect("a temporary directory");
    let started = Instant::now();
    let world = match setup(repo, work.path()) {
        Ok(world) => world,
        Err(error) => {
            println!("FAIL  setup: {error}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    println!("control plane and Defender up in {:.1}s", started.elapsed().as_secs_f64());
    let mut world = world;
    let (mut passed, mut failed) = (0, 0);
    // While working on a scenario: E2E_ONLY=<part of a name>|<another> runs just those.
    let only = std::env::var("E2E_ONLY").unwrap_or_default();
    let chosen = |name: &str| only.is_empty() || only.split('|').any(|part| name.contains(part));
    for (name, scenario) in scenarios::ALL.iter().filter(|(name, _)| chosen(name)) {
        let began = Instant::now();
        match scenario(&mut world) {
            Ok(()) => {
                passed += 1;
                println!("ok    {name} ({:.1}s)", began.elapsed().as_secs_f64());
            }
            Err(error) => {
                failed += 1;
                println!("FAIL  {name} ({:.1}s)", began.elapsed().as_secs_f64());
                for line in error.lines() {
                    println!("      {line}");
                }
            }
        }
    }
    if failed > 0 {
        let log = world.defender.log_text();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        println!("last Defender log lines:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    println!("e2e finished in {:.1}s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    drop(world);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn setup(repo: &'static Path, work: &Path) -> Result<World, String> {
    let cluster = Cluster::up(repo, &work.join("cluster"))?;
    let policies = scenarios::write_policies(repo, &work.join("policies"))?;
    let mut defender = Defender::new(work, policies, &cluster.dir)?;
    defender.start()?;
    let configuration = env::webhook_configuration(&defender)?;
    cluster.kubectl.apply(&configuration.to_string()).accepted()?;
    // The API server picks up a new webhook configuration within a second or two.
    let active = env::wait_until(std::time::Duration::from_secs(30), || {
        let probe = cluster.kubectl.run(&["delete", "namespace", "kube-node-lease", "--dry-run=server"]);
        probe.stderr.contains("defender/core-namespaces")
    });
    if !active {
        return Err("the API server never called Defender for a namespace DELETE".to_owned());
    }
    Ok(World { cluster, defender, replicas: Vec::new(), repo })
}
