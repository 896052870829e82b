//! An index of the objects carrying a protection label, kept in memory by
//! watches, so deleting a namespace is judged without first listing every
//! resource type it holds.
//!
//! One metadata-only watch per namespaced resource type and protection label
//! key (`defender.io/delete-protection`, any value), cluster-wide: the API
//! server sends only the objects carrying the label, so that is all the
//! index holds. A pair answers from memory only while its watch is known to
//! be current: listed, then watching (or re-watching from where it stopped),
//! and heard from within the watch's own timeout. Every other pair (not
//! listed yet, a failed or silent watch, a type discovered a moment ago, a
//! key a policy reload just added, more objects than it keeps) is listed
//! live by the lookup, as if there were no index: the index makes a lookup
//! fast, never less sure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, DynamicObject, ObjectMeta};
use tokio::task::AbortHandle;

use crate::protected_objects::{self, PAGE_SIZE, ProtectedObject};
use crate::server::resource_types::{ResourceType, resource_name};

/// How long each watch request lasts before it is made again from where it
/// stopped. A watch that neither ends nor says anything for this long plus
/// [`SILENCE_GRACE`] is taken as lost: its pair is listed live until it is
/// listed and watched again. So this bounds how long a silently broken
/// connection can leave a pair stale.
const WATCH_SECONDS: u32 = 30;
const SILENCE_GRACE: Duration = Duration::from_secs(10);
/// The most a list page or a watch request may take to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a watch must have held for its loss to count as an accident
/// (listed again at once) rather than one more failure (listed again later).
const HEALTHY_WATCH: Duration = Duration::from_secs(10);
/// Objects listed per page when a pair is first listed.
const LIST_PAGE: u32 = 500;
/// The most objects one pair keeps, cluster-wide. Past it, the pair is
/// listed live (a lookup lists at most [`PAGE_SIZE`] per pair anyway), so a
/// flood of labelled objects costs speed, not memory.
pub const MAX_HELD_PER_PAIR: usize = 2_000;

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
    /// Pairs a lookup read from memory, and pairs it had to list.
    answered: AtomicU64,
    listed: AtomicU64,
}

/// What the index holds and how often it answered, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Watches, one per resource type and key.
    pub watches: usize,
    /// Of those, the ones whose pair answers from memory.
    pub current: usize,
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

/// What one pair's watch holds.
#[derive(Debug, Default)]
struct Held {
    /// Listed and watched without a gap: `objects` can answer.
    current: bool,
    /// By namespace, then uid.
    objects: BTreeMap<(String, String), ProtectedObject>,
}

impl Held {
    fn forget(&mut self) {
        self.current = false;
        self.objects = BTreeMap::new();
    }

    /// Applies one watch event. Fails when the pair holds more than it keeps.
    fn apply(&mut self, resource: &ApiResource, event: Change) -> Result<(), String> {
        match event {
            Change::Present(metadata) => {
                let (identity, object) = protected_object(resource, metadata);
                self.objects.insert((object.namespace.clone(), identity), object);
                if self.objects.len() > MAX_HELD_PER_PAIR {
                    return Err(format!("more than {MAX_HELD_PER_PAIR} objects carry the label"));
                }
            }
            Change::Gone(metadata) => {
                let (identity, object) = protected_object(resource, metadata);
                self.objects.remove(&(object.namespace, identity));
            }
        }
        Ok(())
    }

    fn in_namespace(&self, namespace: &str) -> Listed {
        let mut found = self
            .objects
            .range((namespace.to_owned(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace);
        let objects: Vec<(String, ProtectedObject)> = found
            .by_ref()
            .take(PAGE_SIZE as usize)
            .map(|((_, identity), object)| (identity.clone(), object.clone()))
            .collect();
        Listed { objects, more: found.next().is_some() }
    }
}

/// What a watch event means for the index.
enum Change {
    /// The object carries the label (added, or changed while keeping it).
    Present(ObjectMeta),
    /// Deleted, or no longer carrying the label.
    Gone(ObjectMeta),
}

impl ProtectedIndex {
    pub fn new(client: kube::Client) -> Arc<Self> {
        Arc::new(Self {
            client,
            pairs: Mutex::new(HashMap::new()),
            answered: AtomicU64::new(0),
            listed: AtomicU64::new(0),
        })
    }

    /// Watches every watchable type in `types` under every key in `keys`,
    /// and stops watching any other pair. Pairs already watched go on.
    pub fn follow(self: &Arc<Self>, types: &[ResourceType], keys: &[&str]) {
        let wanted: HashSet<Pair> = types
            .iter()
            .filter(|t| t.watchable)
            .flat_map(|t| keys.iter().map(|key| Pair::new(&t.resource, key)))
            .collect();
        let mut pairs = self.lock_pairs();
        let before = pairs.len();
        pairs.retain(|pair, _| wanted.contains(pair));
        for resource_type in types.iter().filter(|t| t.watchable) {
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
        let listed = held.and_then(|held| {
            let held = lock(&held);
            held.current.then(|| held.in_namespace(namespace))
        });
        let counter = if listed.is_some() { &self.answered } else { &self.listed };
        counter.fetch_add(1, Ordering::Relaxed);
        listed
    }

    pub fn stats(&self) -> IndexStats {
        let pairs = self.lock_pairs();
        IndexStats {
            watches: pairs.len(),
            current: pairs.values().filter(|follower| lock(&follower.held).current).count(),
            answered: self.answered.load(Ordering::Relaxed),
            listed: self.listed.load(Ordering::Relaxed),
        }
    }

    fn start(&self, resource: &ApiResource, key: &str) -> Follower {
        let held = Arc::new(Mutex::new(Held::default()));
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        let watch = follow(api, resource.clone(), key.to_owned(), Arc::downgrade(&held));
        let task = tokio::spawn(watch).abort_handle();
        Follower { held, task }
    }

    fn lock_pairs(&self) -> MutexGuard<'_, HashMap<Pair, Follower>> {
        // Only whole entries are inserted or removed under it.
        self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    // Each change is one map operation; a panic cannot leave half of one.
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lists then watches one pair for as long as the index wants it, listing
/// again (after a pause that grows with failures) whenever the watch is
/// lost. Between losing it and listing again the pair is not current.
async fn follow(api: Api<DynamicObject>, resource: ApiResource, key: String, held: Weak<Mutex<Held>>) {
    let mut failures = 0u32;
    loop {
        let stopped = list_then_watch(&api, &resource, &key, &held).await;
        let Some(slot) = held.upgrade() else { return };
        lock(&slot).forget();
        drop(slot);
        let Stopped { reason, watched_since } = stopped;
        // A watch that held for a while simply ended badly; one that fails
        // as soon as it starts is failing.
        let held_a_while = watched_since.is_some_and(|since| since.elapsed() >= HEALTHY_WATCH);
        failures = if held_a_while { 0 } else { failures + 1 };
        if failures <= 1 {
            tracing::warn!(
                resource = %resource_name(&resource),
                key = %key,
                %reason,
                "the protected-object index lost a watch: that type is listed live until it is watched again"
            );
        } else {
            tracing::debug!(resource = %resource_name(&resource), key = %key, %reason, "still not watched");
        }
        tokio::time::sleep(pause(failures)).await;
    }
}

/// Why a pair's watch stopped, and since when it had been watching.
struct Stopped {
    reason: String,
    watched_since: Option<Instant>,
}

impl Stopped {
    fn unwatched(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), watched_since: None }
    }

    fn watched(since: Instant, reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), watched_since: Some(since) }
    }
}

async fn list_then_watch(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    key: &str,
    held: &Weak<Mutex<Held>>,
) -> Stopped {
    let (objects, mut version) = match list(api, resource, key).await {
        Ok(listed) => listed,
        Err(reason) => return Stopped::unwatched(reason),
    };
    let Some(slot) = held.upgrade() else { return Stopped::unwatched("no longer wanted") };
    *lock(&slot) = Held { current: true, objects };
    drop(slot);
    let params = WatchParams::default().labels(key).timeout(WATCH_SECONDS);
    let silence = Duration::from_secs(u64::from(WATCH_SECONDS)) + SILENCE_GRACE;
    let mut watched_since = None;
    loop {
        let events = match tokio::time::timeout(REQUEST_TIMEOUT, api.watch_metadata(&params, &version)).await
        {
            Ok(Ok(events)) => events,
            Ok(Err(error)) => return Stopped { reason: format!("watching failed: {error}"), watched_since },
            Err(_) => {
                return Stopped { reason: "the API server did not answer the watch".into(), watched_since };
            }
        };
        let since = *watched_since.get_or_insert_with(Instant::now);
        let mut events = std::pin::pin!(events);
        loop {
            let event = match tokio::time::timeout(silence, events.next()).await {
                Err(_) => return Stopped::watched(since, format!("the watch was silent for {silence:?}")),
                // The request's own timeout: watch again from where it stopped.
                Ok(None) => break,
                Ok(Some(Err(error))) => return Stopped::watched(since, format!("the watch failed: {error}")),
                Ok(Some(Ok(event))) => event,
            };
            let change = match event {
                WatchEvent::Added(object) | WatchEvent::Modified(object) => Change::Present(object.metadata),
                WatchEvent::Deleted(object) => Change::Gone(object.metadata),
                WatchEvent::Bookmark(bookmark) => {
                    version = bookmark.metadata.resource_version;
                    continue;
                }
                // 410 Gone included: what changed since `version` is no longer known.
                WatchEvent::Error(status) => {
                    return Stopped::watched(since, format!("the watch ended: {}", status.message));
                }
            };
            if let Some(seen) = change.metadata().resource_version.clone() {
                version = seen;
            }
            let Some(slot) = held.upgrade() else { return Stopped::watched(since, "no longer wanted") };
            if let Err(reason) = lock(&slot).apply(resource, change) {
                return Stopped::watched(since, reason);
            }
        }
    }
}

impl Change {
    fn metadata(&self) -> &ObjectMeta {
        match self {
            Change::Present(metadata) | Change::Gone(metadata) => metadata,
        }
    }
}

type Objects = BTreeMap<(String, String), ProtectedObject>;

/// Every object of `resource` carrying `key`, cluster-wide, and the version
/// to watch from.
async fn list(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    key: &str,
) -> Result<(Objects, String), String> {
    let mut objects = BTreeMap::new();
    let mut params = ListParams::default().labels(key).limit(LIST_PAGE);
    loop {
        let page = match tokio::time::timeout(REQUEST_TIMEOUT, api.list_metadata(&params)).await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return Err(format!("listing failed: {error}")),
            Err(_) => return Err("the API server did not answer the list".to_owned()),
        };
        for item in page.items {
            let (identity, object) = protected_object(resource, item.metadata);
            objects.insert((object.namespace.clone(), identity), object);
        }
        if objects.len() > MAX_HELD_PER_PAIR {
            return Err(format!("more than {MAX_HELD_PER_PAIR} objects carry the label"));
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => {
                let version = page.metadata.resource_version.ok_or("the list named no resourceVersion")?;
                return Ok((objects, version));
            }
        }
    }
}

/// The pause before listing a pair again: short after a watch that was
/// current (its request simply ended badly), growing to a minute while the
/// pair keeps failing (no permission to watch, a type going away).
fn pause(failures: u32) -> Duration {
    match failures {
        0 => Duration::from_millis(200),
        n => Duration::from_secs(1 << (n.min(7) - 1)).min(Duration::from_secs(60)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> ApiResource {
        ApiResource {
            group: String::new(),
            version: "v1".to_owned(),
            api_version: "v1".to_owned(),
            kind: "Secret".to_owned(),
            plural: "secrets".to_owned(),
        }
    }

    fn metadata(namespace: &str, name: &str, value: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            uid: Some(format!("uid-{namespace}-{name}")),
            labels: Some(
                [
                    ("defender.io/delete-protection".to_owned(), value.to_owned()),
                    ("team".to_owned(), "web".to_owned()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn names(listed: &Listed) -> Vec<&str> {
        listed.objects.iter().map(|(_, object)| object.name.as_str()).collect()
    }

    #[test]
    fn events_keep_each_namespace_s_labelled_objects() {
        let mut held = Held { current: true, ..Held::default() };
        for (namespace, name) in [("shop", "db"), ("shop", "api"), ("shopping", "cart"), ("a", "z")] {
            held.apply(&secrets(), Change::Present(metadata(namespace, name, "Always"))).unwrap();
        }
        assert_eq!(names(&held.in_namespace("shop")), ["api", "db"]);
        assert_eq!(names(&held.in_namespace("shopping")), ["cart"]);
        assert!(held.in_namespace("sho").objects.is_empty());

        // A changed value replaces the object; only protection labels are kept.
        held.apply(&secrets(), Change::Present(metadata("shop", "db", "Cascading"))).unwrap();
        let shop = held.in_namespace("shop");
        let db = &shop.objects[1].1;
        assert_eq!(db.labels, [("defender.io/delete-protection".to_owned(), "Cascading".to_owned())].into());
        assert_eq!((db.kubectl_resource().as_str(), db.uid.as_deref()), ("secret", Some("uid-shop-db")));

        held.apply(&secrets(), Change::Gone(metadata("shop", "db", "Cascading"))).unwrap();
        assert_eq!(names(&held.in_namespace("shop")), ["api"]);
        held.forget();
        assert!(!held.current && held.objects.is_empty());
    }

    #[test]
    fn a_namespace_answers_at_most_a_page_and_says_there_are_more() {
        let mut held = Held::default();
        for n in 0..=PAGE_SIZE {
            held.apply(&secrets(), Change::Present(metadata("shop", &format!("s{n:03}"), "Always"))).unwrap();
        }
        let shop = held.in_namespace("shop");
        assert_eq!((shop.objects.len(), shop.more), (PAGE_SIZE as usize, true));
        held.apply(&secrets(), Change::Gone(metadata("shop", "s000", "Always"))).unwrap();
        let shop = held.in_namespace("shop");
        assert_eq!((shop.objects.len(), shop.more), (PAGE_SIZE as usize, false));
    }

    #[test]
    fn a_pair_holding_too_many_objects_stops_answering() {
        let mut held = Held::default();
        for n in 0..MAX_HELD_PER_PAIR {
            held.apply(&secrets(), Change::Present(metadata("shop", &n.to_string(), "Always"))).unwrap();
        }
        let over = held.apply(&secrets(), Change::Present(metadata("shop", "one-more", "Always")));
        assert_eq!(over, Err(format!("more than {MAX_HELD_PER_PAIR} objects carry the label")));
    }

    #[test]
    fn pauses_grow_while_failing_up_to_a_minute() {
        let pauses: Vec<u64> = (0..10).map(|n| pause(n).as_millis() as u64).collect();
        assert_eq!(pauses, [200, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    }
}
