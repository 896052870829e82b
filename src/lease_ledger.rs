//! One budget for every replica: the spends of a cluster-wide budget kept in a
//! `coordination.k8s.io/v1` Lease in Defender's own namespace.
//!
//! With two replicas, budgets in memory would each allow the full limit, and a
//! script gone wrong would get twice the deletions the operator configured.
//! So each spend reads the Lease, applies the same sliding-window rules as a
//! local budget ([`Window`]), and writes it back with the resourceVersion it
//! read: if another replica wrote in between, the API server answers 409
//! Conflict and the spend is tried again on fresh data. Only namespace
//! deletions use it, so the round trip does not slow other reviews.
//!
//! Dry runs only read. When the API server cannot be reached, the budget
//! fails closed (the deletion is refused with a clear message) unless the
//! operator chose to count in each replica's memory meanwhile.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::budget::{Quota, Refusal, SharedLedger, Spent, Unavailable, Window};
use crate::engine::Engine;

/// The annotation holding the spends, as a JSON list of `{at, object}`.
const SPENDS: &str = "defender.io/budget-spends";
/// The quota of the replica that wrote last, for people reading the Lease.
const QUOTA: &str = "defender.io/budget-quota";
/// How many times a spend is retried when other replicas keep writing first.
const MAX_ATTEMPTS: u32 = 10;

/// What a budget does while its Lease cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenUnreachable {
    /// Refuse the deletion: the budget cannot be counted.
    Deny,
    /// Count in this replica's memory only (N replicas then allow up to N times the budget).
    Local,
}

/// Where Defender keeps the Leases of its shared budgets, and how it talks to them.
#[derive(Clone)]
pub struct LeaseLedgers {
    leases: Api<Lease>,
    namespace: String,
    runtime: tokio::runtime::Handle,
    /// The most one operation may take, retries included; below the request timeout.
    deadline: Duration,
    when_unreachable: WhenUnreachable,
}

impl LeaseLedgers {
    /// Must be called on the tokio runtime the server runs on.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        deadline: Duration,
        when_unreachable: WhenUnreachable,
    ) -> Self {
        Self {
            leases: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            runtime: tokio::runtime::Handle::current(),
            deadline,
            when_unreachable,
        }
    }

    /// Moves every cluster-wide budget of `engine` not yet shared into its Lease.
    /// Per-user budgets stay in memory: they bound one client's burst, which
    /// one replica sees whole as long as its connection lasts.
    pub fn share(&self, engine: &Engine) {
        for policy in engine.policies() {
            for gauge in policy.budgets() {
                if gauge.key.is_some() && !gauge.budget.is_shared() {
                    let name = lease_name(policy.name(), gauge.name);
                    tracing::info!(
                        lease = %format!("{}/{name}", self.namespace),
                        budget = gauge.name,
                        "the budget is shared by every replica through a Lease"
                    );
                    gauge.budget.share_through(Arc::new(LeaseLedger::new(self.clone(), name)));
                }
            }
        }
    }
}

/// `defender-<policy>-<budget>`, made a valid object name.
fn lease_name(policy: &str, budget: &str) -> String {
    let raw = format!("defender-{policy}-{budget}").to_lowercase();
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    name.chars().take(253).collect::<String>().trim_end_matches('-').to_owned()
}

/// One budget's Lease.
#[derive(Debug)]
pub struct LeaseLedger {
    ledgers: LeaseLedgers,
    name: String,
    /// The window as last read or written, for metrics.
    last_seen: Mutex<Window>,
    /// Spends counted here while the Lease is out of reach ([`WhenUnreachable::Local`]).
    fallback: Mutex<Window>,
}

impl std::fmt::Debug for LeaseLedgers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLedgers").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

/// Why one attempt at the Lease failed.
enum Failure {
    /// Another replica wrote first: read again and retry.
    Conflict,
    Unavailable(String),
}

impl LeaseLedger {
    fn new(ledgers: LeaseLedgers, name: String) -> Self {
        Self { ledgers, name, last_seen: Mutex::default(), fallback: Mutex::default() }
    }

    fn record(&self) -> String {
        format!("Lease {}/{}", self.ledgers.namespace, self.name)
    }

    /// Runs `operation` to completion from the synchronous review path. The
    /// server's runtime has several worker threads; `block_in_place` hands
    /// this one's other tasks to them while it waits.
    fn block_on<T>(&self, operation: impl Future<Output = Result<T, String>>) -> Result<T, Unavailable> {
        let deadline = self.ledgers.deadline;
        let outcome = tokio::task::block_in_place(|| {
            self.ledgers.runtime.block_on(async { tokio::time::timeout(deadline, operation).await })
        });
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {}", crate::clock::human_exact(deadline)),
        };
        Err(Unavailable { record: self.record(), error })
    }

    /// The Lease and the window it holds; a Lease not created yet holds none.
    async fn read(&self) -> Result<(Option<Lease>, Window), Failure> {
        let lease = self.ledgers.leases.get_opt(&self.name).await.map_err(failure)?;
        let window = match lease.as_ref().and_then(|lease| lease.metadata.annotations.as_ref()?.get(SPENDS)) {
            Some(json) => serde_json::from_str(json).map_err(|error| {
                Failure::Unavailable(format!(
                    "its {SPENDS} annotation is not a list of spends ({error}); deleting the Lease resets the budget"
                ))
            })?,
            None => Window::default(),
        };
        Ok((lease, window))
    }

    /// Writes `window` back over `lease` (its resourceVersion guards against lost updates).
    async fn write(
        &self,
        lease: Option<Lease>,
        window: &Window,
        quota: Option<Quota>,
    ) -> Result<(), Failure> {
        let spends = serde_json::to_string(window).map_err(|e| Failure::Unavailable(e.to_string()))?;
        let mut lease = lease.unwrap_or_else(|| Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.ledgers.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec::default()),
        });
        let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(SPENDS.to_owned(), spends);
        if let Some(quota) = quota {
            annotations.insert(QUOTA.to_owned(), quota.to_string());
        }
        let params = PostParams::default();
        let written = match lease.metadata.resource_version {
            Some(_) => self.ledgers.leases.replace(&self.name, &params, &lease).await,
            None => self.ledgers.leases.create(&params, &lease).await,
        };
        written.map(drop).map_err(failure)
    }

    /// Reads, lets `change` edit the window, and writes it back if `change`
    /// asks to; retried from a fresh read when another replica wrote first.
    async fn update<T>(
        &self,
        quota: Option<Quota>,
        mut change: impl FnMut(&mut Window) -> (T, bool),
    ) -> Result<T, String> {
        for attempt in 0..MAX_ATTEMPTS {
            let (lease, mut window) = match self.read().await {
                Ok(read) => read,
                Err(Failure::Unavailable(error)) => return Err(error),
                Err(Failure::Conflict) => continue,
            };
            let (outcome, write) = change(&mut window);
            if !write {
                self.remember(window);
                return Ok(outcome);
            }
            match self.write(lease, &window, quota).await {
                Ok(()) => {
                    self.remember(window);
                    return Ok(outcome);
                }
                Err(Failure::Conflict) => tokio::time::sleep(backoff(attempt)).await,
                Err(Failure::Unavailable(error)) => return Err(error),
            }
        }
        Err(format!("other replicas kept writing it first, {MAX_ATTEMPTS} times in a row"))
    }

    fn remember(&self, window: Window) {
        *lock(&self.last_seen) = window;
    }

    /// The record is out of reach: refuse, or count locally if so configured.
    fn unreachable(
        &self,
        unavailable: Unavailable,
        local: impl FnOnce(&mut Window) -> Result<Spent, crate::budget::Exhausted>,
    ) -> Result<Spent, Refusal> {
        match self.ledgers.when_unreachable {
            WhenUnreachable::Deny => {
                tracing::warn!(%unavailable, "refusing a budgeted deletion: the shared budget cannot be counted");
                Err(Refusal::Unavailable(unavailable))
            }
            WhenUnreachable::Local => {
                tracing::warn!(%unavailable, "counting a budgeted deletion in this replica only");
                Ok(local(&mut lock(&self.fallback))?)
            }
        }
    }
}

impl SharedLedger for LeaseLedger {
    fn check(&self, quota: Quota, object: &str, now: Timestamp) -> Result<Spent, Refusal> {
        let read = self.block_on(async {
            match self.read().await {
                Ok((_, mut window)) => Ok(window.fits(quota, object, now)),
                Err(Failure::Unavailable(error)) => Err(error),
                Err(Failure::Conflict) => Err("the API server answered 409 Conflict to a read".to_owned()),
            }
        });
        match read {
            Ok(fits) => Ok(fits?),
            Err(unavailable) => self.unreachable(unavailable, |window| window.fits(quota, object, now)),
        }
    }

    fn try_spend(&self, quota: Quota, object: &str, now: Timestamp) -> Result<Spent, Refusal> {
        let spend = self.block_on(self.update(Some(quota), |window| {
            let spent = window.try_spend(quota, object, now);
            let write = spent == Ok(Spent::New);
            (spent, write)
        }));
        match spend {
            Ok(spent) => Ok(spent?),
            Err(unavailable) => self.unreachable(unavailable, |window| window.try_spend(quota, object, now)),
        }
    }

    fn refund(&self, object: &str, at: Timestamp) {
        if lock(&self.fallback).refund(object, at) {
            return;
        }
        let refunded = self.block_on(self.update(None, |window| ((), window.refund(object, at))));
        if let Err(unavailable) = refunded {
            // The slot stays taken until it ages out: the safe side of a failure.
            tracing::warn!(%unavailable, object, "could not give back a budget slot");
        }
    }

    fn remaining(&self, quota: Quota, now: Timestamp) -> u32 {
        quota.limit.saturating_sub(lock(&self.last_seen).used(quota, now))
    }
}

fn failure(error: kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) if status.code == 409 => Failure::Conflict,
        kube::Error::Api(status) => Failure::Unavailable(format!(
            "the API server answered {} {}: {}",
            status.code, status.reason, status.message
        )),
        other => Failure::Unavailable(other.to_string()),
    }
}

/// A short, spread-out pause before retrying, so replicas that collided do not collide again.
fn backoff(attempt: u32) -> Duration {
    let spread = u64::from(std::process::id() % 7)
        + u64::from(Timestamp::now().subsec_nanosecond().unsigned_abs() % 11);
    Duration::from_millis(5 * u64::from(attempt + 1) + spread)
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    // Every mutation leaves the window whole, so a poisoned lock is still usable.
    window.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_valid_object_names() {
        assert_eq!(
            lease_name("namespace-deletion", "namespace-deletions"),
            "defender-namespace-deletion-namespace-deletions"
        );
        assert_eq!(
            lease_name("Team_Policy.v2", "namespace-deletions"),
            "defender-team-policy-v2-namespace-deletions"
        );
        assert!(lease_name(&"x".repeat(400), "b").len() <= 253);
    }
}
