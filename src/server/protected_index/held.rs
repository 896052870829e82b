//! What one pair's watch holds: the objects of one resource type carrying
//! one protection label key, and whether they can answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kube::core::{ApiResource, ObjectMeta};

use crate::protected_objects::{PAGE_SIZE, ProtectedObject};
use crate::server::protected_index::{Listed, protected_object};

/// The most objects one pair keeps, cluster-wide, and all pairs together.
/// Past either, the pair is listed live at each namespace deletion (which
/// lists at most [`PAGE_SIZE`] per pair anyway), so a flood of labelled
/// objects costs speed, and the index stays within a few megabytes.
pub const MAX_HELD_PER_PAIR: usize = 2_000;
pub const MAX_HELD: usize = 20_000;

/// How long a pair answers after the API server was last heard from on its
/// watch (an event, a bookmark, the watch ending at its own timeout). The
/// watch cache sends a bookmark just before each watch's timeout, so a
/// healthy pair is heard at least every watch; past this, a re-watch that
/// hangs or a connection that died silently no longer answers.
pub const FRESH_FOR: Duration = Duration::from_secs(40);

/// Where a pair stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairState {
    /// Not listed yet, or its watch was lost: listed live until it is back.
    Listing,
    /// Listed and watched without a gap.
    Watching,
    /// More objects carry the label than the index keeps.
    TooMany,
    /// Defender may not list or watch the type.
    Forbidden,
}

/// One object carrying the label: what a lookup reports beyond its type,
/// namespace and identity, which the index is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    name: String,
    /// Only its protection labels.
    labels: BTreeMap<String, String>,
    /// Its identity is its uid (objects from the API server all have one).
    has_uid: bool,
}

/// Objects by namespace, then identity (uid).
pub type Objects = BTreeMap<(String, String), Entry>;

/// What one pair's watch holds.
pub struct Held {
    resource: ApiResource,
    state: PairState,
    heard: Instant,
    objects: Objects,
    /// Objects held by every pair together.
    total: Arc<AtomicUsize>,
}

impl Held {
    pub fn new(resource: ApiResource, total: Arc<AtomicUsize>) -> Self {
        Self { resource, state: PairState::Listing, heard: Instant::now(), objects: Objects::new(), total }
    }

    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    pub fn state(&self) -> PairState {
        self.state
    }

    /// Listed and heard from recently enough to answer.
    pub fn answers(&self) -> bool {
        self.state == PairState::Watching && self.heard.elapsed() < FRESH_FOR
    }

    /// The API server was heard from on this pair's watch.
    pub fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// A fresh list: it replaces everything held, and the pair answers.
    pub fn listed(&mut self, objects: Objects) -> Result<(), String> {
        self.total.fetch_add(objects.len(), Ordering::Relaxed);
        let before = std::mem::replace(&mut self.objects, objects);
        self.total.fetch_sub(before.len(), Ordering::Relaxed);
        self.state = PairState::Watching;
        self.heard();
        self.within_bounds()
    }

    /// Stops answering and lets go of what it held.
    pub fn forget(&mut self, state: PairState) {
        self.total.fetch_sub(self.objects.len(), Ordering::Relaxed);
        self.objects = Objects::new();
        self.state = state;
    }

    /// The object described by `metadata` carries the label (added, or
    /// changed while keeping it). Fails past the bounds.
    pub fn present(&mut self, metadata: ObjectMeta) -> Result<(), String> {
        self.heard();
        let (key, entry) = entry(&self.resource, metadata);
        if self.objects.insert(key, entry).is_none() {
            self.total.fetch_add(1, Ordering::Relaxed);
        }
        self.within_bounds()
    }

    /// The object described by `metadata` was deleted or no longer carries the label.
    pub fn gone(&mut self, metadata: ObjectMeta) {
        self.heard();
        let (key, _) = entry(&self.resource, metadata);
        if self.objects.remove(&key).is_some() {
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn within_bounds(&self) -> Result<(), String> {
        within_pair_bound(&self.objects)?;
        if self.total.load(Ordering::Relaxed) > MAX_HELD {
            return Err(format!("the index holds more than {MAX_HELD} objects of every type"));
        }
        Ok(())
    }

    /// The objects held in `namespace`, at most a page of them.
    pub fn in_namespace(&self, namespace: &str) -> Listed {
        let mut found = self
            .objects
            .range((namespace.to_owned(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace);
        let objects: Vec<(String, ProtectedObject)> = found
            .by_ref()
            .take(PAGE_SIZE as usize)
            .map(|((namespace, identity), entry)| {
                let object = ProtectedObject {
                    kind: self.resource.kind.clone(),
                    group: self.resource.group.clone(),
                    plural: Some(self.resource.plural.clone()),
                    namespace: namespace.clone(),
                    name: entry.name.clone(),
                    labels: entry.labels.clone(),
                    uid: Some(identity.clone()).filter(|_| entry.has_uid),
                };
                (identity.clone(), object)
            })
            .collect();
        Listed { objects, more: found.next().is_some() }
    }
}

/// Fails when one pair's objects are more than it keeps.
pub fn within_pair_bound(objects: &Objects) -> Result<(), String> {
    if objects.len() > MAX_HELD_PER_PAIR {
        return Err(format!("more than {MAX_HELD_PER_PAIR} objects carry the label"));
    }
    Ok(())
}

/// The object described by `metadata`, keyed as the index keeps it.
pub fn entry(resource: &ApiResource, metadata: ObjectMeta) -> ((String, String), Entry) {
    let (identity, object) = protected_object(resource, metadata);
    let entry = Entry { name: object.name, labels: object.labels, has_uid: object.uid.is_some() };
    ((object.namespace, identity), entry)
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.objects.len(), Ordering::Relaxed);
    }
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

    fn watching(total: &Arc<AtomicUsize>) -> Held {
        let mut held = Held::new(secrets(), Arc::clone(total));
        held.listed(Objects::new()).unwrap();
        held
    }

    fn names(listed: &Listed) -> Vec<&str> {
        listed.objects.iter().map(|(_, object)| object.name.as_str()).collect()
    }

    #[test]
    fn events_keep_each_namespace_s_labelled_objects() {
        let total = Arc::default();
        let mut held = watching(&total);
        for (namespace, name) in [("shop", "db"), ("shop", "api"), ("shopping", "cart"), ("a", "z")] {
            held.present(metadata(namespace, name, "Always")).unwrap();
        }
        assert_eq!(names(&held.in_namespace("shop")), ["api", "db"]);
        assert_eq!(names(&held.in_namespace("shopping")), ["cart"]);
        assert!(held.in_namespace("sho").objects.is_empty());

        // A changed value replaces the object; only protection labels are kept.
        held.present(metadata("shop", "db", "Cascading")).unwrap();
        let shop = held.in_namespace("shop");
        let (identity, db) = &shop.objects[1];
        assert_eq!(db.labels, [("defender.io/delete-protection".to_owned(), "Cascading".to_owned())].into());
        assert_eq!((identity.as_str(), db.uid.as_deref()), ("uid-shop-db", Some("uid-shop-db")));
        assert_eq!(
            (db.describe().as_str(), db.kubectl_resource().as_str()),
            ("secret \"shop/db\"", "secret")
        );

        held.gone(metadata("shop", "db", "Cascading"));
        assert_eq!(names(&held.in_namespace("shop")), ["api"]);
        assert_eq!(total.load(Ordering::Relaxed), 3);
        held.forget(PairState::Listing);
        assert!(!held.answers() && held.in_namespace("shop").objects.is_empty());
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn only_a_listed_pair_heard_from_recently_answers() {
        let total = Arc::default();
        let mut held = Held::new(secrets(), Arc::clone(&total));
        assert!(!held.answers(), "not listed yet");
        held.listed(Objects::new()).unwrap();
        assert!(held.answers());
        held.heard = Instant::now() - FRESH_FOR;
        assert!(!held.answers(), "silent for too long");
        held.gone(metadata("shop", "db", "Always"));
        assert!(held.answers(), "an event is news from the API server");
        for state in [PairState::Listing, PairState::TooMany, PairState::Forbidden] {
            held.forget(state);
            assert!(!held.answers());
        }
    }

    #[test]
    fn a_namespace_answers_at_most_a_page_and_says_there_are_more() {
        let mut held = watching(&Arc::default());
        for n in 0..=PAGE_SIZE {
            held.present(metadata("shop", &format!("s{n:03}"), "Always")).unwrap();
        }
        let shop = held.in_namespace("shop");
        assert_eq!((shop.objects.len(), shop.more), (PAGE_SIZE as usize, true));
        held.gone(metadata("shop", "s000", "Always"));
        let shop = held.in_namespace("shop");
        assert_eq!((shop.objects.len(), shop.more), (PAGE_SIZE as usize, false));
    }

    #[test]
    fn a_pair_past_its_bound_or_the_index_s_fails() {
        let total = Arc::default();
        let mut held = watching(&total);
        for n in 0..MAX_HELD_PER_PAIR {
            held.present(metadata("shop", &n.to_string(), "Always")).unwrap();
        }
        let over = held.present(metadata("shop", "one-more", "Always"));
        assert_eq!(over, Err(format!("more than {MAX_HELD_PER_PAIR} objects carry the label")));
        drop(held);
        assert_eq!(total.load(Ordering::Relaxed), 0, "a dropped pair gives its objects back");

        let total = Arc::new(AtomicUsize::new(MAX_HELD));
        let mut held = watching(&total);
        let over = held.present(metadata("shop", "db", "Always"));
        assert_eq!(over, Err(format!("the index holds more than {MAX_HELD} objects of every type")));
        held.forget(PairState::TooMany);
        assert_eq!(total.load(Ordering::Relaxed), MAX_HELD);
    }
}
