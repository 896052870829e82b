//! An index of the objects carrying a protection label, kept in memory by
//! watches, so deleting a namespace is judged without first listing every
//! resource type it holds.
//!
//! One metadata-only watch per namespaced resource type and protection label
//! key (`defender.io/delete-protection`, any value), cluster-wide: the API
//! server sends only the objects carrying the label, so that is all the
//! index holds. A pair answers from memory only while its watch is known to
//! be current: listed, then watching (or re-watching from where it stopped),
//! and heard from within the last 40 seconds (a bookmark or the end of each
//! 30-second watch request, if nothing else). Every other pair (not listed
//! yet, a failed or silent watch, a type discovered a moment ago, a key a
//! policy reload just added, more objects than the index keeps, a type
//! Defender may not watch) is listed live by the lookup, as if there were no
//! index. So a watch lost without a sound leaves a pair stale for at most
//! those 40 seconds, the same order as the rest of the cluster view.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Api;
use kube::core::{ApiResource, DynamicObject, ObjectMeta};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::protected_objects::{self, ProtectedObject};
use crate::server::resource_types::ResourceType;

mod follow;
mod held;

use held::{Held, PairState};

/// Pairs listing at once (all of them list when Defender starts).
const CONCURRENT_LISTS: usize = 8;

/// The protected objects of one resource type under one key, found in one namespace.
#[derive(Default)]
pub struct Listed {
    /// By identity (uid), which also deduplicates across keys and groups.
    pub objects: Vec<(String, ProtectedObject)>,
    /// There were more than were kept.
    pub more: bool,
}

/// The objects carrying a protection label, by resource type and key.
pub struct ProtectedIndex {
    client: kube::Client,
    pairs: Mutex<HashMap<Pair, Follower>>,
    /// Objects held by every pair together, bounded by [`held::MAX_HELD`].
    total: Arc<AtomicUsize>,
    lists: Arc<Semaphore>,
    /// Pairs a lookup read from memory, and pairs it had to list.
    answered: AtomicU64,
    listed: AtomicU64,
}

/// What the index holds and how often it answered, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Pairs whose watch is current: they answer from memory.
    pub current: usize,
    /// Pairs not listed yet, or whose watch was lost or went silent.
    pub not_current: usize,
    /// Pairs with more labelled objects than the index keeps.
    pub too_many: usize,
    /// Pairs Defender may not list or watch.
    pub forbidden: usize,
    /// Pairs lookups read from memory, since start.
    pub answered: u64,
    /// Pairs lookups had to list live, since start.
    pub listed: u64,
}

/// One resource type (at the version discovery recommends) and one label key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Pair {
    group: String,
    version: String,
    plural: String,
    key: String,
}

impl Pair {
    fn new(resource: &ApiResource, key: &str) -> Self {
        Self {
            group: resource.group.clone(),
            version: resource.version.clone(),
            plural: resource.plural.clone(),
            key: key.to_owned(),
        }
    }
}

/// The watch of one pair and what it holds; dropping it stops the watch.
struct Follower {
    held: Arc<Mutex<Held>>,
    task: AbortHandle,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProtectedIndex {
    pub fn new(client: kube::Client) -> Arc<Self> {
        Arc::new(Self {
            client,
            pairs: Mutex::new(HashMap::new()),
            total: Arc::default(),
            lists: Arc::new(Semaphore::new(CONCURRENT_LISTS)),
            answered: AtomicU64::new(0),
            listed: AtomicU64::new(0),
        })
    }

    /// Watches every watchable type in `types` under every key in `keys`,
    /// and stops watching any other pair. Pairs already watched go on.
    pub fn follow(&self, types: &[ResourceType], keys: &[&str]) {
        let watchable = || types.iter().filter(|t| t.watchable);
        let wanted: HashSet<Pair> =
            watchable().flat_map(|t| keys.iter().map(|key| Pair::new(&t.resource, key))).collect();
        let mut pairs = self.lock_pairs();
        let before = pairs.len();
        pairs.retain(|pair, _| wanted.contains(pair));
        for resource_type in watchable() {
            for key in keys {
                let pair = Pair::new(&resource_type.resource, key);
                pairs.entry(pair).or_insert_with(|| self.start(&resource_type.resource, key));
            }
        }
        if pairs.len() != before {
            tracing::info!(
                pairs = pairs.len(),
                "watching the objects carrying a protection label, one watch per resource type and key"
            );
        }
    }

    /// The objects of `resource` carrying `key` in `namespace`, if that pair
    /// is current; `None` means it must be listed live.
    pub fn in_namespace(&self, resource: &ApiResource, key: &str, namespace: &str) -> Option<Listed> {
        let held =
            self.lock_pairs().get(&Pair::new(resource, key)).map(|follower| Arc::clone(&follower.held));
        held.and_then(|held| {
            let held = lock(&held);
            held.answers().then(|| held.in_namespace(namespace))
        })
    }

    /// Counts how one lookup's pairs were answered: from memory, or listed.
    pub fn count_lookup(&self, answered: usize, listed: usize) {
        self.answered.fetch_add(answered as u64, Ordering::Relaxed);
        self.listed.fetch_add(listed as u64, Ordering::Relaxed);
    }

    pub fn stats(&self) -> IndexStats {
        let mut stats = IndexStats {
            answered: self.answered.load(Ordering::Relaxed),
            listed: self.listed.load(Ordering::Relaxed),
            ..IndexStats::default()
        };
        for follower in self.lock_pairs().values() {
            let held = lock(&follower.held);
            let count = match held.state() {
                _ if held.answers() => &mut stats.current,
                PairState::TooMany => &mut stats.too_many,
                PairState::Forbidden => &mut stats.forbidden,
                PairState::Listing | PairState::Watching => &mut stats.not_current,
            };
            *count += 1;
        }
        stats
    }

    fn start(&self, resource: &ApiResource, key: &str) -> Follower {
        let held = Arc::new(Mutex::new(Held::new(resource.clone(), Arc::clone(&self.total))));
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        let watch = follow::follow(api, key.to_owned(), Arc::downgrade(&held), Arc::clone(&self.lists));
        let task = tokio::spawn(watch).abort_handle();
        Follower { held, task }
    }

    fn lock_pairs(&self) -> MutexGuard<'_, HashMap<Pair, Follower>> {
        // Only whole entries are inserted or removed under it.
        self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    // Each change is one map operation and a counter; a panic cannot leave half of one.
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An object of `resource` as a lookup reports it, with its identity (its
/// uid; without one, its type and name).
pub fn protected_object(resource: &ApiResource, metadata: ObjectMeta) -> (String, ProtectedObject) {
    let name = metadata.name.unwrap_or_default();
    let namespace = metadata.namespace.unwrap_or_default();
    let uid = metadata.uid;
    let identity =
        uid.clone().unwrap_or_else(|| format!("{}/{}/{namespace}/{name}", resource.group, resource.kind));
    let labels = metadata
        .labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(label, _)| label.ends_with(protected_objects::LABEL_SUFFIX))
        .collect();
    let object = ProtectedObject {
        kind: resource.kind.clone(),
        group: resource.group.clone(),
        plural: Some(resource.plural.clone()),
        namespace,
        name,
        labels,
        uid,
    };
    (identity, object)
}
