//! Finding the objects protected by label in a namespace, just before a
//! review that would delete the namespace is judged.
//!
//! Deleting a namespace deletes every object in it, of every kind, and the
//! live view keeps only a few kinds. So when a namespace is about to go, the
//! API server is asked: the namespaced resource types that can be listed
//! (discovered every few seconds), then, per type and protection label key
//! (any value: the policy judges which objects labelled `Cascading` hold the
//! namespace), the objects carrying it. A pair the index watches
//! ([`ProtectedIndex`]) answers from memory; any other is listed, metadata
//! only, concurrently and bounded in size and in time, from the API
//! server's watch cache. It runs on the async runtime, before the engine, so
//! the engine stays free of I/O.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::{ListParams, VersionMatch};
use kube::core::{ApiResource, DynamicObject};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::protected_objects::{self, Found, Lookup, PAGE_SIZE, Prefetched, ProtectedObject};
use crate::request::Request;
use crate::server::current_engine::CurrentEngine;
use crate::server::lookups;
use crate::server::protected_index::{Listed, ProtectedIndex, protected_object};
use crate::server::resource_types::{ResourceTypes, resource_name};

/// Lists in flight at once for one lookup.
const CONCURRENT_LISTS: usize = 16;
/// How often the resource types are discovered again and the index matched
/// to them and to the policies' keys: a type (a CRD) installed since is
/// looked in from then on.
const INDEX_CHECK: Duration = Duration::from_secs(5);

/// The most one discovery of the resource types may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Finds protected objects through the API server.
#[derive(Clone)]
pub struct ProtectedObjectFinder {
    client: kube::Client,
    /// The most one lookup may take, discovery included; a slower API
    /// server means a refusal.
    timeout: Duration,
    types: Arc<ResourceTypes>,
    index: Arc<ProtectedIndex>,
}

impl ProtectedObjectFinder {
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        let types = Arc::new(ResourceTypes::new(client.clone()));
        let index = ProtectedIndex::new(client.clone());
        Self { client, timeout, types, index }
    }

    /// The index of objects carrying a protection label, this finder reads first.
    pub fn index(&self) -> Arc<ProtectedIndex> {
        Arc::clone(&self.index)
    }

    /// Keeps the index watching every discovered type under the keys of the
    /// policies in force (a reload may change them), until `shutdown`.
    pub async fn keep_index(self, engine: Arc<CurrentEngine>, mut shutdown: watch::Receiver<bool>) {
        let mut check = tokio::time::interval(INDEX_CHECK);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = check.tick() => {}
                _ = shutdown.changed() => break,
            }
            let refreshed = tokio::time::timeout(DISCOVERY_TIMEOUT, self.types.refresh()).await;
            match refreshed
                .unwrap_or_else(|_| Err(format!("discovery took longer than {DISCOVERY_TIMEOUT:?}")))
            {
                Ok(types) => {
                    failing = false;
                    self.index.follow(&types, &engine.get().protection_label_keys());
                }
                // Said once per outage: a lookup meanwhile uses the types
                // last discovered, for up to a minute, then refuses.
                Err(reason) if !std::mem::replace(&mut failing, true) => {
                    tracing::warn!(%reason, "the protected-object index keeps the types it had")
                }
                Err(_) => {}
            }
        }
        self.index.follow(&[], &[]);
    }

    /// Looks in `namespace`, within the lookup's time bound.
    async fn find_within(&self, namespace: &str, keys: &[&str]) -> Lookup {
        lookups::within(self.timeout, self.find(namespace, keys)).await
    }

    /// Reads the index for every type and key it holds current, and lists
    /// the others live.
    async fn find(&self, namespace: &str, keys: &[&str]) -> Lookup {
        let types = self.types.listable().await?;
        let mut found = Vec::new();
        // Built in a loop, not by closures over the iterators: a stream of
        // closures' futures is not provably Send across the review's await.
        let mut lists = Vec::new();
        for resource_type in types.iter() {
            for key in keys {
                match self.index.in_namespace(&resource_type.resource, key, namespace) {
                    Some(indexed) => found.push(indexed),
                    None => lists.push(self.list(&resource_type.resource, namespace, key)),
                }
            }
        }
        self.index.count_lookup(found.len(), lists.len());
        let listed: Vec<Result<Listed, String>> =
            futures::stream::iter(lists).buffer_unordered(CONCURRENT_LISTS).collect().await;
        for listed in listed {
            found.push(listed?);
        }
        Ok(merged(found))
    }

    /// The lookup answered from the index alone, without waiting: `None`
    /// when a type would have to be listed, or discovery is due.
    fn find_in_memory(&self, namespace: &str, keys: &[&str]) -> Option<Found> {
        let types = self.types.cached()?;
        let mut found = Vec::with_capacity(types.len() * keys.len());
        for resource_type in types.iter() {
            for key in keys {
                found.push(self.index.in_namespace(&resource_type.resource, key, namespace)?);
            }
        }
        self.index.count_lookup(found.len(), 0);
        Some(merged(found))
    }

    /// One page of `resource`'s objects in `namespace` carrying the label `key`.
    async fn list(&self, resource: &ApiResource, namespace: &str, key: &str) -> Result<Listed, String> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, resource);
        let params = from_watch_cache(ListParams::default().labels(key).limit(PAGE_SIZE));
        let page = match api.list_metadata(&params).await {
            Ok(page) => page,
            // Its definition went away since discovery: nothing of it is left.
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Listed::default()),
            Err(error) => return Err(lookups::listing_failed(&resource_name(resource), &error)),
        };
        let more = page.metadata.continue_.is_some_and(|token| !token.is_empty());
        let objects = page.items.into_iter().map(|item| protected_object(resource, item.metadata)).collect();
        Ok(Listed { objects, more })
    }
}

/// What every type and key found, one entry per object: the same object
/// can be served by two groups (core and events.k8s.io Events) and found
/// under two keys, each copy read at its own moment.
fn merged(found: Vec<Listed>) -> Found {
    let (mut by_identity, mut at_least) = (BTreeMap::<String, ProtectedObject>::new(), false);
    for listed in found {
        at_least |= listed.more;
        for (identity, object) in listed.objects {
            match by_identity.entry(identity) {
                Entry::Vacant(vacant) => {
                    vacant.insert(object);
                }
                Entry::Occupied(mut copy) => copy.get_mut().merge_labels(object.labels),
            }
        }
    }
    let mut objects: Vec<ProtectedObject> = by_identity.into_values().collect();
    objects.sort();
    Found { objects, at_least }
}

/// A list served from the API server's watch cache as it stands, still paged:
/// any version not older than the first. A consistent list waits for that
/// cache to catch up with etcd, which the API server checks every 100 ms, so
/// every namespace deletion would wait about that long. The cache trails etcd
/// by what a watch does, the freshness the rest of the view works at; a label
/// added within those milliseconds of the deletion is a race nobody can aim
/// at, and one removed then still protects. (kube leaves `resourceVersion=0`
/// out of a list with a limit, making it consistent again: hence "1".)
fn from_watch_cache(params: ListParams) -> ListParams {
    params.matching(VersionMatch::NotOlderThan).at("1")
}

/// The lookup a namespace deletion needs, when the index answers it whole
/// without waiting: the review is then judged at once. `None` when it must
/// be made on the runtime ([`prefetch`]), or none is needed.
pub fn prefetch_from_index(
    finder: Option<&ProtectedObjectFinder>,
    engine: &Engine,
    request: &Request,
) -> Option<Prefetched> {
    let namespace = protected_objects::deleted_namespace(request)?;
    let keys = engine.protection_label_keys();
    if keys.is_empty() {
        return None;
    }
    let found = finder?.find_in_memory(namespace, &keys)?;
    Some(Prefetched { namespace: namespace.to_owned(), lookup: Ok(found) })
}

/// The lookup a request needs before it is judged: the protected objects in
/// the namespace it deletes, if it deletes one and a policy of `engine`
/// protects objects by label. Without a cluster connection the cluster view
/// answers alone, as it does for everything else. Every other review returns
/// at the first check.
pub async fn prefetch(
    finder: Option<&ProtectedObjectFinder>,
    engine: &Engine,
    request: &Request,
) -> Option<Prefetched> {
    let namespace = protected_objects::deleted_namespace(request)?;
    let finder = finder?;
    let keys = engine.protection_label_keys();
    if keys.is_empty() {
        return None;
    }
    let lookup = finder.find_within(namespace, &keys).await;
    if let Err(reason) = &lookup {
        tracing::warn!(namespace, reason, "protected objects not looked up");
    }
    Some(Prefetched { namespace: namespace.to_owned(), lookup })
}
