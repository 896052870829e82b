//! One budget for every replica: the spends of a cluster-wide budget kept in a
//! `coordination.k8s.io/v1` Lease in Defender's own namespace.
//!
//! With two replicas, budgets in memory would each allow the full limit, and a
//! script gone wrong would get twice the deletions the operator configured.
//! So the spends live in a Lease, under the same sliding-window rules as a
//! local budget ([`Window`]).
//!
//! The Lease is watched, not read: a copy in memory answers dry runs, the
//! engine's checks and the metrics without a round trip. Only a real spend
//! reaches the API server: it applies the spend to the copy and writes it back
//! with the copy's resourceVersion. If another replica wrote in between, the
//! API server answers 409 Conflict and the spend is retried on a fresh read;
//! any answer that writes nothing (the budget is full, the object was already
//! counted) is read fresh too, so a lagging copy never decides a refusal.
//!
//! When the API server cannot be reached (or the watch is down, so the copy
//! may be stale), the budget fails closed (the deletion is refused with a
//! clear message) unless the operator chose to count in each replica's memory
//! meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::budget::{Exhausted, Quota, Refusal, SharedLedger, SpendFuture, Spent, Unavailable, Window};
use crate::clock;
use crate::engine::Engine;

/// The annotation holding the spends, as a JSON list of `{at, object}`.
const SPENDS: &str = "defender.io/budget-spends";
/// The quota of the replica that wrote last, for people reading the Lease.
const QUOTA: &str = "defender.io/budget-quota";
/// How many times a spend is retried when other replicas keep writing first.
const MAX_ATTEMPTS: u32 = 10;

/// What a budget does while its Lease cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Must be called on the tokio runtime the server runs on: each ledger
    /// watches its Lease there.
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
    /// one replica sees whole as long as its connection lasts (README.md,
    /// "Per-user Pod bursts stay per replica", weighs sharing them).
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
pub struct LeaseLedger {
    ledgers: LeaseLedgers,
    name: String,
    /// The Lease as last watched or written.
    copy: Arc<Mutex<Copy>>,
    /// Spends counted here while the Lease is out of reach ([`WhenUnreachable::Local`]).
    fallback: Mutex<Window>,
    /// The watch keeping `copy` current; stopped with the ledger.
    watch: tokio::task::JoinHandle<()>,
}

/// What this replica knows of the Lease.
#[derive(Debug)]
struct Copy {
    /// The copy follows the Lease: false until the watch first lists it, and
    /// while the watch is down.
    current: bool,
    /// The watch has listed the Lease at least once.
    listed: bool,
    /// `None` while no Lease exists: no spends yet.
    lease: Option<Lease>,
    /// The spends it holds, or why they cannot be read.
    window: Result<Window, String>,
}

impl std::fmt::Debug for LeaseLedgers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLedgers").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LeaseLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLedger").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Drop for LeaseLedger {
    fn drop(&mut self) {
        self.watch.abort();
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
        let copy = Arc::new(Mutex::new(Copy {
            current: false,
            listed: false,
            lease: None,
            window: Ok(Window::default()),
        }));
        let watch =
            ledgers.runtime.spawn(follow(ledgers.leases.clone(), name.clone(), Arc::downgrade(&copy)));
        Self { ledgers, name, copy, fallback: Mutex::default(), watch }
    }

    /// The Lease and its spends, by the copy if it follows the Lease.
    fn copied(&self) -> Option<(Option<Lease>, Window)> {
        let copy = lock(&self.copy);
        match (&copy.window, copy.current) {
            (Ok(window), true) => Some((copy.lease.clone(), window.clone())),
            _ => None,
        }
    }

    /// The Lease read fresh; a Lease not created yet holds no spends.
    async fn read(&self) -> Result<(Option<Lease>, Window), Failure> {
        let lease = self.ledgers.leases.get_opt(&self.name).await.map_err(failure)?;
        let window = spends(lease.as_ref()).map_err(Failure::Unavailable)?;
        Ok((lease, window))
    }

    /// Writes `window` over `lease`: created if there was none, else replaced
    /// with the resourceVersion it was read at, so a write from another
    /// replica in between is a Conflict, not a lost update. (Not kube's
    /// `Api::entry`: it always reads first, and the point of the copy is to
    /// write without a read.)
    async fn write(
        &self,
        lease: Option<Lease>,
        window: &Window,
        quota: Option<Quota>,
    ) -> Result<Lease, Failure> {
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
        written.map_err(failure)
    }

    /// Lets `change` edit the window and writes it back if `change` asks to.
    /// The first attempt starts from the copy when `from_copy` and the copy
    /// follows the Lease; an outcome that writes nothing is only trusted
    /// from a fresh read, and so is every retry after a Conflict.
    async fn update<T>(
        &self,
        quota: Option<Quota>,
        from_copy: bool,
        mut change: impl FnMut(&mut Window) -> (T, bool),
    ) -> Result<T, String> {
        let mut copied = if from_copy { self.copied() } else { None };
        for attempt in 0..MAX_ATTEMPTS {
            let fresh = copied.is_none();
            let (lease, mut window) = match copied.take() {
                Some(copied) => copied,
                None => match self.read().await {
                    Ok(read) => read,
                    Err(Failure::Unavailable(error)) => return Err(error),
                    Err(Failure::Conflict) => continue,
                },
            };
            let (outcome, write) = change(&mut window);
            if !write {
                if fresh {
                    return Ok(outcome);
                }
                continue;
            }
            match self.write(lease, &window, quota).await {
                Ok(written) => {
                    self.remember(written, window);
                    return Ok(outcome);
                }
                Err(Failure::Conflict) if fresh => tokio::time::sleep(backoff(attempt)).await,
                Err(Failure::Conflict) => {}
                Err(Failure::Unavailable(error)) => return Err(error),
            }
        }
        Err(format!("other replicas kept writing it first, {MAX_ATTEMPTS} times in a row"))
    }

    /// Runs `operation` within the ledger's deadline.
    async fn within_deadline<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, Unavailable> {
        let deadline = self.ledgers.deadline;
        let error = match tokio::time::timeout(deadline, operation).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {}", clock::human_exact(deadline)),
        };
        Err(Unavailable { record: self.record(), error })
    }

    /// What this replica just wrote is the Lease now, until the watch says otherwise.
    fn remember(&self, written: Lease, window: Window) {
        let mut copy = lock(&self.copy);
        copy.lease = Some(written);
        copy.window = Ok(window);
    }

    /// The record is out of reach: refuse, or count locally if so configured.
    fn unreachable(
        &self,
        unavailable: Unavailable,
        local: impl FnOnce(&mut Window) -> Result<Spent, Exhausted>,
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
        let read = {
            let copy = lock(&self.copy);
            match (&copy.window, copy.current) {
                (Ok(window), true) => Ok(window.clone().fits(quota, object, now)),
                (Err(error), true) => Err(error.clone()),
                (_, false) => {
                    Err("it is not followed yet: its watch has not listed it, or is reconnecting".into())
                }
            }
        };
        match read {
            Ok(fits) => Ok(fits?),
            Err(error) => {
                let unavailable = Unavailable { record: self.record(), error };
                self.unreachable(unavailable, |window| window.fits(quota, object, now))
            }
        }
    }

    fn try_spend<'a>(&'a self, quota: Quota, object: &'a str, now: Timestamp) -> SpendFuture<'a> {
        async move {
            let spend = self.update(Some(quota), true, |window| {
                let spent = window.try_spend(quota, object, now);
                let write = spent == Ok(Spent::New);
                (spent, write)
            });
            match self.within_deadline(spend).await {
                Ok(spent) => Ok(spent?),
                Err(unavailable) => {
                    self.unreachable(unavailable, |window| window.try_spend(quota, object, now))
                }
            }
        }
        .boxed()
    }

    fn refund<'a>(&'a self, object: &'a str, at: Timestamp) -> BoxFuture<'a, ()> {
        async move {
            if lock(&self.fallback).refund(object, at) {
                return;
            }
            let refund = self.update(None, false, |window| ((), window.refund(object, at)));
            if let Err(unavailable) = self.within_deadline(refund).await {
                // The slot stays taken until it ages out: the safe side of a failure.
                tracing::warn!(%unavailable, object, "could not give back a budget slot");
            }
        }
        .boxed()
    }

    fn record(&self) -> String {
        format!("Lease {}/{}", self.ledgers.namespace, self.name)
    }

    fn listed(&self) -> bool {
        lock(&self.copy).listed
    }

    fn remaining(&self, quota: Quota, now: Timestamp) -> u32 {
        let mut copy = lock(&self.copy);
        let used = copy.window.as_mut().map_or(0, |window| window.used(quota, now));
        quota.limit.saturating_sub(used)
    }
}

/// Keeps `copy` following the Lease `name` until the ledger is dropped.
async fn follow(leases: Api<Lease>, name: String, copy: Weak<Mutex<Copy>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(leases, config).default_backoff());
    // A listing in progress: the Lease it found, if any.
    let mut listed: Option<Lease> = None;
    while let Some(event) = events.next().await {
        let Some(copy) = copy.upgrade() else { return };
        let mut copy = lock(&copy);
        match event {
            Ok(Event::Init) => listed = None,
            Ok(Event::InitApply(lease)) => listed = Some(lease),
            Ok(Event::InitDone) => copy.follow(listed.take()),
            Ok(Event::Apply(lease)) => copy.follow(Some(lease)),
            Ok(Event::Delete(_)) => copy.follow(None),
            Err(error) => {
                if copy.current {
                    tracing::warn!(%error, lease = %name, "budget Lease watch interrupted; retrying");
                }
                copy.current = false;
            }
        }
    }
}

impl Copy {
    fn follow(&mut self, lease: Option<Lease>) {
        self.window = spends(lease.as_ref());
        self.lease = lease;
        self.current = true;
        self.listed = true;
    }
}

/// The spends a Lease holds; none if there is no Lease or it has no spends yet.
fn spends(lease: Option<&Lease>) -> Result<Window, String> {
    match lease.and_then(|lease| lease.metadata.annotations.as_ref()?.get(SPENDS)) {
        Some(json) => serde_json::from_str(json).map_err(|error| {
            format!("its {SPENDS} annotation is not a list of spends ({error}); deleting the Lease resets the budget")
        }),
        None => Ok(Window::default()),
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

fn lock<T>(value: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every mutation leaves the value whole, so a poisoned lock is still usable.
    value.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
