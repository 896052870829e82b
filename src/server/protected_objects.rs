//! Finding the objects protected by label in a namespace, just before a
//! review that would delete the namespace is judged.
//!
//! Deleting a namespace deletes every object in it, of every kind, and the
//! live view keeps only a few kinds. So when a namespace is about to go, the
//! API server is asked: the namespaced resource types that can be listed
//! (discovery, kept for a minute), then one metadata-only list per type and
//! protection label key, any value (the policy judges which objects labelled
//! `Cascading` hold the namespace), run concurrently and bounded in size and
//! in time, read from the API server's watch cache. It runs on the async
//! runtime, before the engine, so the engine stays free of I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{ListParams, VersionMatch};
use kube::core::{ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope, verbs};

use crate::engine::Engine;
use crate::protected_objects::{self, Found, Lookup, PAGE_SIZE, Prefetched, ProtectedObject};
use crate::request::Request;
use crate::server::lookups;

/// How long discovered resource types are trusted: a type added since is
/// looked at once this has passed.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);
/// Lists in flight at once for one lookup.
const CONCURRENT_LISTS: usize = 16;

/// Finds protected objects through the API server.
#[derive(Clone)]
pub struct ProtectedObjectFinder {
    client: kube::Client,
    /// The most one lookup may take, discovery included; a slower API
    /// server means a refusal.
    timeout: Duration,
    discovered: Arc<Mutex<Option<Discovered>>>,
}

/// The namespaced resource types that can be listed, and when they were found.
struct Discovered {
    at: Instant,
    resources: Arc<Vec<ApiResource>>,
}

impl ProtectedObjectFinder {
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        Self { client, timeout, discovered: Arc::new(Mutex::new(None)) }
    }

    /// Looks in `namespace`, within the lookup's time bound.
    async fn find_within(&self, namespace: &str, keys: &[&str]) -> Lookup {
        lookups::within(self.timeout, self.find(namespace, keys)).await
    }

    async fn find(&self, namespace: &str, keys: &[&str]) -> Lookup {
        let resources = self.listable_resources().await?;
        // Built in a loop, not by closures over the iterators: a stream of
        // closures' futures is not provably Send across the review's await.
        let mut lists = Vec::with_capacity(resources.len() * keys.len());
        for resource in resources.iter() {
            for key in keys {
                lists.push(self.list(resource, namespace, key));
            }
        }
        let listed: Vec<Result<Listed, String>> =
            futures::stream::iter(lists).buffer_unordered(CONCURRENT_LISTS).collect().await;
        let (mut seen, mut objects, mut at_least) = (BTreeSet::new(), Vec::new(), false);
        for listed in listed {
            let listed = listed?;
            at_least |= listed.more;
            // The same object can be served by two groups (core and
            // events.k8s.io Events) and found under two keys.
            for (uid, object) in listed.objects {
                if seen.insert(uid) {
                    objects.push(object);
                }
            }
        }
        objects.sort();
        Ok(Found { objects, at_least })
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
        let objects = page
            .items
            .into_iter()
            .map(|item| {
                let metadata = item.metadata;
                let name = metadata.name.unwrap_or_default();
                let uid = metadata.uid;
                let identity =
                    uid.clone().unwrap_or_else(|| format!("{}/{}/{name}", resource.group, resource.kind));
                let labels: BTreeMap<String, String> = metadata
                    .labels
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(label, _)| label.ends_with(protected_objects::LABEL_SUFFIX))
                    .collect();
                let object = ProtectedObject {
                    kind: resource.kind.clone(),
                    group: resource.group.clone(),
                    plural: Some(resource.plural.clone()),
                    namespace: namespace.to_owned(),
                    name,
                    labels,
                    uid,
                };
                (identity, object)
            })
            .collect();
        Ok(Listed { objects, more })
    }

    /// The namespaced resource types that can be listed, discovered at most
    /// [`DISCOVERY_TTL`] ago.
    async fn listable_resources(&self) -> Result<Arc<Vec<ApiResource>>, String> {
        {
            let discovered = self.discovered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(discovered) = discovered.as_ref().filter(|d| d.at.elapsed() < DISCOVERY_TTL) {
                return Ok(Arc::clone(&discovered.resources));
            }
        }
        // Aggregated discovery takes two requests; older API servers need one per group.
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(discovery) => discovery,
            Err(_) => Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(|error| format!("discovering the API server's resource types failed: {error}"))?,
        };
        let resources: Vec<ApiResource> = discovery
            .groups()
            .flat_map(|group| group.recommended_resources())
            .filter(|(_, capabilities)| {
                capabilities.scope == Scope::Namespaced && capabilities.supports_operation(verbs::LIST)
            })
            .map(|(resource, _)| resource)
            .collect();
        let resources = Arc::new(resources);
        let mut discovered = self.discovered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *discovered = Some(Discovered { at: Instant::now(), resources: Arc::clone(&resources) });
        Ok(resources)
    }
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

/// What one list found: objects by uid, and whether there were more.
#[derive(Default)]
struct Listed {
    objects: Vec<(String, ProtectedObject)>,
    more: bool,
}

/// How a failed list names `resource`: `secrets`, `certificates.cert-manager.io`.
fn resource_name(resource: &ApiResource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
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
