//! Sliding-window budgets: "at most N events per window", per key.
//!
//! Defender's budgets mean exactly what an operator writes: `3 per 10m` allows
//! at most three deletions in any ten-minute span, and the next slot opens when
//! the oldest of them ages out. A token bucket (GCRA) would let up to 2N-1
//! through in one window and cannot answer "would this fit?" without spending,
//! which dry-run requests and evaluate-then-commit both need. So the budget
//! keeps the timestamps of recent spends: N is small, memory is N per key.
//! (This is why Defender does not use a GCRA rate limiter such as governor:
//! its answers would not be the budget the operator configured.)
//!
//! Each spend names the object it is for. The API server may run admission
//! more than once for one deletion (graceful deletion retries its update on
//! a conflict), so a second review of an object already counted in the
//! window passes without spending again.
//!
//! A cluster-wide budget can keep its spends in a [`SharedLedger`] instead of
//! this process's memory, so that every replica draws on one allowance.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::clock;

/// How many events a budget allows, and over how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per {}", self.limit, clock::human(self.window))
    }
}

/// Why a spend did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub quota: Quota,
    /// When the next slot opens.
    pub refills_at: Timestamp,
}

/// The shared record of a budget could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record} cannot be reached ({error})")]
pub struct Unavailable {
    /// Where the record lives: `Lease defender-system/defender-budget-namespace-deletions`.
    pub record: String,
    pub error: String,
}

/// Why a spend was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The window is full.
    Exhausted(Exhausted),
    /// The shared record is out of reach, and the budget fails closed.
    Unavailable(Unavailable),
}

impl From<Exhausted> for Refusal {
    fn from(exhausted: Exhausted) -> Self {
        Self::Exhausted(exhausted)
    }
}

/// A record of one budget's spends kept outside this process, which every
/// replica reads and writes, so the limit holds cluster-wide. Implementations
/// decide themselves what to do when the record is out of reach.
///
/// Reads answer from a copy kept current in memory, so judging never waits on
/// I/O; only spending and giving back reach the record.
pub trait SharedLedger: Send + Sync + std::fmt::Debug {
    /// Whether a spend would fit, by the copy in memory.
    fn check(&self, quota: Quota, object: &str, now: Timestamp) -> Result<Spent, Refusal>;
    /// Spends one slot in the record itself; losing a race to another replica
    /// answers with what the fresh record says.
    fn try_spend<'a>(&'a self, quota: Quota, object: &'a str, now: Timestamp) -> SpendFuture<'a>;
    fn refund<'a>(&'a self, object: &'a str, at: Timestamp) -> BoxFuture<'a, ()>;
    /// Slots left by the copy in memory (metrics read it).
    fn remaining(&self, quota: Quota, now: Timestamp) -> u32;
    /// Where the record is, for people: `Lease defender-system/...`.
    fn record(&self) -> String;
    /// Whether the copy in memory has been filled from the record at least once.
    fn listed(&self) -> bool {
        true
    }
}

/// A spend in progress on a [`SharedLedger`].
pub type SpendFuture<'a> = BoxFuture<'a, Result<Spent, Refusal>>;

/// A keyed sliding-window budget. Keys are independent (e.g. one per user and
/// namespace); the cluster-wide namespace budget uses a single key.
#[derive(Debug)]
pub struct Budget {
    quota: Quota,
    spends: Mutex<HashMap<String, Window>>,
    /// Set for a cluster-wide budget whose spends every replica shares.
    shared: OnceLock<Arc<dyn SharedLedger>>,
}

/// One counted event: when, and for which object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    pub at: Timestamp,
    pub object: String,
}

/// The spends of one key still inside the window, oldest first. The
/// sliding-window arithmetic lives here, so a shared ledger applies exactly
/// the same rules to the spends it reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Window(VecDeque<Spend>);

/// What a successful spend did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// A slot was taken.
    New,
    /// The object was already counted in this window; nothing was taken.
    AlreadyCounted,
}

/// Sweep idle keys once the map grows past this, so per-user keys can't pile up.
const SWEEP_ABOVE_KEYS: usize = 1024;

impl Budget {
    pub fn new(quota: Quota) -> Self {
        Self { quota, spends: Mutex::new(HashMap::new()), shared: OnceLock::new() }
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Keeps this budget's spends in `ledger` from now on. Only for budgets
    /// with a single key: the ledger holds one window. A budget is shared
    /// once; later calls are ignored.
    pub fn share_through(&self, ledger: Arc<dyn SharedLedger>) {
        let _ = self.shared.set(ledger);
    }

    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// The shared record whose copy has not been filled yet, if any.
    pub fn unlisted_record(&self) -> Option<String> {
        self.shared.get().filter(|ledger| !ledger.listed()).map(|ledger| ledger.record())
    }

    /// Whether a spend for `object` would fit now, without spending and
    /// without I/O: a shared budget answers from its copy in memory.
    pub fn check(&self, key: &str, object: &str, now: Timestamp) -> Result<Spent, Refusal> {
        if let Some(ledger) = self.shared.get() {
            return ledger.check(self.quota, object, now);
        }
        let mut spends = self.lock();
        match spends.get_mut(key) {
            Some(recent) => Ok(recent.fits(self.quota, object, now)?),
            None => Ok(Window::default().fits(self.quota, object, now)?),
        }
    }

    /// Spends one slot for `object` if it fits; the check and the spend are
    /// one atomic step. A shared budget spends in its record, the one step
    /// of a review that may wait on the API server.
    pub async fn spend(&self, key: &str, object: &str, now: Timestamp) -> Result<Spent, Refusal> {
        match self.shared.get() {
            Some(ledger) => ledger.try_spend(self.quota, object, now).await,
            None => self.try_spend(key, object, now),
        }
    }

    /// Gives back the slot `object` took at `at`, when a later step of the
    /// same decision failed.
    pub async fn give_back(&self, key: &str, object: &str, at: Timestamp) {
        match self.shared.get() {
            Some(ledger) => ledger.refund(object, at).await,
            None => self.refund(key, object, at),
        }
    }

    /// [`Budget::spend`] in this process's memory.
    fn try_spend(&self, key: &str, object: &str, now: Timestamp) -> Result<Spent, Refusal> {
        let mut spends = self.lock();
        if spends.len() > SWEEP_ABOVE_KEYS {
            self.sweep(&mut spends, now);
        }
        Ok(spends.entry(key.to_owned()).or_default().try_spend(self.quota, object, now)?)
    }

    /// [`Budget::give_back`] in this process's memory.
    fn refund(&self, key: &str, object: &str, at: Timestamp) {
        if let Some(recent) = self.lock().get_mut(key) {
            recent.refund(object, at);
        }
    }

    /// Slots left for `key` now.
    pub fn remaining(&self, key: &str, now: Timestamp) -> u32 {
        if let Some(ledger) = self.shared.get() {
            return ledger.remaining(self.quota, now);
        }
        let mut spends = self.lock();
        let used = spends.get_mut(key).map_or(0, |recent| recent.used(self.quota, now));
        self.quota.limit.saturating_sub(used)
    }

    /// The fewest slots any key has left now: for a per-user budget, how close
    /// the busiest user is to the limit.
    pub fn lowest_remaining(&self, now: Timestamp) -> u32 {
        if let Some(ledger) = self.shared.get() {
            return ledger.remaining(self.quota, now);
        }
        let mut spends = self.lock();
        let most_used = spends.values_mut().map(|recent| recent.used(self.quota, now)).max().unwrap_or(0);
        self.quota.limit.saturating_sub(most_used)
    }

    fn sweep(&self, spends: &mut HashMap<String, Window>, now: Timestamp) {
        spends.retain(|_, recent| recent.used(self.quota, now) > 0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        // Every mutation leaves the map consistent, so a poisoned lock is still usable.
        self.spends.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Window {
    /// Whether a spend for `object` fits in `quota` now (expired spends are dropped first).
    pub fn fits(&mut self, quota: Quota, object: &str, now: Timestamp) -> Result<Spent, Exhausted> {
        self.forget_expired(quota, now);
        if self.0.iter().any(|spend| spend.object == object) {
            return Ok(Spent::AlreadyCounted);
        }
        if self.0.len() < quota.limit as usize {
            return Ok(Spent::New);
        }
        // Full: the slot that opens first is the one the oldest spend holds.
        let oldest = self.0.front().map_or(now, |spend| spend.at);
        Err(Exhausted { quota, refills_at: clock::add(oldest, quota.window) })
    }

    /// [`Window::fits`], recording the spend when it takes a new slot.
    pub fn try_spend(&mut self, quota: Quota, object: &str, now: Timestamp) -> Result<Spent, Exhausted> {
        let spent = self.fits(quota, object, now)?;
        if spent == Spent::New {
            self.0.push_back(Spend { at: now, object: object.to_owned() });
        }
        Ok(spent)
    }

    /// Removes the spend `object` made at `at`; false if there is none.
    pub fn refund(&mut self, object: &str, at: Timestamp) -> bool {
        match self.0.iter().rposition(|spend| spend.at == at && spend.object == object) {
            Some(index) => self.0.remove(index).is_some(),
            None => false,
        }
    }

    /// Slots in use now.
    pub fn used(&mut self, quota: Quota, now: Timestamp) -> u32 {
        self.forget_expired(quota, now);
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    fn forget_expired(&mut self, quota: Quota, now: Timestamp) {
        while let Some(oldest) = self.0.front() {
            if clock::add(oldest.at, quota.window) <= now {
                self.0.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    /// A distinct object per spend time, as distinct deletions would be.
    fn object(seconds: i64) -> String {
        format!("object-{seconds}")
    }

    fn refills_at(refusal: Refusal) -> Timestamp {
        match refusal {
            Refusal::Exhausted(exhausted) => exhausted.refills_at,
            Refusal::Unavailable(unavailable) => panic!("a local budget is never unavailable: {unavailable}"),
        }
    }

    fn three_per_ten_minutes() -> Budget {
        Budget::new(Quota { limit: 3, window: Duration::from_secs(600) })
    }

    #[test]
    fn allows_exactly_the_limit_within_a_window() {
        let budget = three_per_ten_minutes();
        for second in [0, 10, 20] {
            assert!(budget.try_spend("ns", &object(second), at(second)).is_ok());
        }
        let refused = budget.try_spend("ns", &object(30), at(30)).unwrap_err();
        assert_eq!(refills_at(refused), at(600));
    }

    #[test]
    fn the_oldest_spend_ages_out_exactly_one_window_later() {
        let budget = three_per_ten_minutes();
        for second in [0, 100, 200] {
            budget.try_spend("ns", &object(second), at(second)).unwrap();
        }
        assert!(budget.try_spend("ns", &object(599), at(599)).is_err());
        assert!(budget.try_spend("ns", &object(600), at(600)).is_ok());
        assert_eq!(refills_at(budget.try_spend("ns", &object(650), at(650)).unwrap_err()), at(700));
    }

    #[test]
    fn check_does_not_spend() {
        let budget = three_per_ten_minutes();
        for _ in 0..10 {
            assert!(budget.check("ns", "pod", at(0)).is_ok());
        }
        assert_eq!(budget.remaining("ns", at(0)), 3);
    }

    #[test]
    fn keys_are_independent() {
        let budget = Budget::new(Quota { limit: 1, window: Duration::from_secs(60) });
        assert!(budget.try_spend("alice/prod", &object(0), at(0)).is_ok());
        assert!(budget.try_spend("alice/prod", &object(1), at(1)).is_err());
        assert!(budget.try_spend("bob/prod", &object(1), at(1)).is_ok());
    }

    #[test]
    fn refund_gives_the_slot_back() {
        let budget = Budget::new(Quota { limit: 1, window: Duration::from_secs(60) });
        budget.try_spend("k", &object(5), at(5)).unwrap();
        budget.refund("k", &object(5), at(5));
        assert!(budget.try_spend("k", &object(6), at(6)).is_ok());
    }

    #[test]
    fn lowest_remaining_follows_the_busiest_key_until_its_spends_expire() {
        let budget = three_per_ten_minutes();
        assert_eq!(budget.lowest_remaining(at(0)), 3);
        budget.try_spend("alice", &object(0), at(0)).unwrap();
        budget.try_spend("alice", &object(1), at(1)).unwrap();
        budget.try_spend("bob", &object(2), at(2)).unwrap();
        assert_eq!(budget.lowest_remaining(at(3)), 1);
        assert_eq!(budget.lowest_remaining(at(601)), 2);
        assert_eq!(budget.lowest_remaining(at(700)), 3);
    }

    #[test]
    fn idle_keys_are_swept() {
        let budget = Budget::new(Quota { limit: 1, window: Duration::from_secs(60) });
        for user in 0..=SWEEP_ABOVE_KEYS {
            budget.try_spend(&format!("user-{user}"), &object(0), at(0)).unwrap();
        }
        budget.try_spend("late", &object(120), at(120)).unwrap();
        assert_eq!(budget.lock().len(), 1);
    }

    #[test]
    fn the_same_object_is_counted_once_per_window() {
        let budget = Budget::new(Quota { limit: 2, window: Duration::from_secs(60) });
        assert_eq!(budget.try_spend("k", "uid-a", at(0)), Ok(Spent::New));
        assert_eq!(budget.try_spend("k", "uid-a", at(1)), Ok(Spent::AlreadyCounted));
        assert_eq!(budget.check("k", "uid-a", at(2)), Ok(Spent::AlreadyCounted));
        assert_eq!(budget.try_spend("k", "uid-b", at(2)), Ok(Spent::New));
        assert!(budget.try_spend("k", "uid-c", at(3)).is_err());
        assert_eq!(
            budget.try_spend("k", "uid-a", at(4)),
            Ok(Spent::AlreadyCounted),
            "already inside the budget"
        );
        assert_eq!(budget.try_spend("k", "uid-a", at(60)), Ok(Spent::New), "a new window counts it again");
    }
}
