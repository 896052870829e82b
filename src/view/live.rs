//! The live view: watches of every kind the policies consult, each event
//! summarized and recorded in a [`MemoryView`], so reviews read memory and
//! never wait on an API call.
//!
//! Namespaces are watched metadata-only; the other kinds need a field or
//! two of their spec or status, so each object is read only in the parts
//! its summary needs ([`Parts`]), summarized and dropped. Pods that finished
//! are filtered out by the API server. HTTPRoutes are watched only if the
//! cluster serves the Gateway API.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::core::{ApiResource, PartialObjectMeta};
use kube::error::DiscoveryError;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, discovery};

use crate::view::http_route::{self, HttpRoute};
use crate::view::memory::{self, MemoryView, Watched};
use crate::view::parts::Parts;
use crate::view::{ClusterView, Contents, HostPath, NamespaceInfo, Referent, Referrer, Route, Serving};

/// The cluster as the API server last reported it.
pub struct LiveView {
    view: Arc<RwLock<MemoryView>>,
    watches: Vec<Arc<Synced>>,
}

/// Whether one watch has listed its kind once.
pub struct Synced {
    plural: &'static str,
    done: AtomicBool,
}

impl Synced {
    fn new(plural: &'static str) -> Arc<Self> {
        Arc::new(Self { plural, done: AtomicBool::new(false) })
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// True the first time.
    fn mark(&self) -> bool {
        !self.done.swap(true, Ordering::AcqRel)
    }
}

/// Pods that finished hold nothing and use nothing; the API server leaves them out.
const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";

impl LiveView {
    /// Starts every watch on the current tokio runtime. They reconnect with
    /// backoff for as long as the process runs.
    pub fn start(client: kube::Client) -> Self {
        let mut live = Self { view: Arc::default(), watches: Vec::new() };
        // How each kind is listed first: Follower::run.
        let config = watcher::Config::default();
        // Api<PartialObjectMeta<_>> asks for metadata only.
        live.follow(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), config.clone());
        live.follow(Api::<Parts<Pod>>::all(client.clone()), config.clone().fields(LIVE_PODS));
        live.follow(Api::<Parts<Deployment>>::all(client.clone()), config.clone());
        live.follow(Api::<Parts<StatefulSet>>::all(client.clone()), config.clone());
        live.follow(Api::<Parts<ReplicaSet>>::all(client.clone()), config.clone());
        live.follow(Api::<Parts<DaemonSet>>::all(client.clone()), config.clone());
        live.follow(Api::<Parts<PersistentVolumeClaim>>::all(client.clone()), config.clone());
        live.follow(Api::<Parts<Ingress>>::all(client.clone()), config.clone());
        live.follow_http_routes(client, config);
        live
    }

    fn follow<K>(&mut self, api: Api<K>, config: watcher::Config)
    where
        K: Watched + Clone + Debug + Send + 'static,
    {
        let follower = Follower::<K>::new(Arc::clone(&self.view), self.synced(K::PLURAL));
        tokio::spawn(follower.run(api, config));
    }

    /// HTTPRoutes are a CRD: watched if the API server serves them, in the
    /// version it recommends. Discovery is retried until the API server answers.
    fn follow_http_routes(&mut self, client: kube::Client, config: watcher::Config) {
        let follower = Follower::<HttpRoute>::new(Arc::clone(&self.view), self.synced(HttpRoute::PLURAL));
        tokio::spawn(async move {
            match discover_http_routes(&client).await {
                Some(resource) => {
                    tracing::info!(
                        version = %resource.api_version,
                        "watching HTTPRoutes: their hostnames count in the duplicate-hosts check"
                    );
                    follower.run(Api::<HttpRoute>::all_with(client, &resource), config).await;
                }
                None => {
                    tracing::info!(
                        "the cluster does not serve {} {}: HTTPRoute hostnames are not part of the \
                         duplicate-hosts check (restart Defender after installing the Gateway API)",
                        http_route::GROUP,
                        http_route::KIND
                    );
                    follower.synced.mark();
                }
            }
        });
    }

    fn synced(&mut self, plural: &'static str) -> Arc<Synced> {
        let synced = Synced::new(plural);
        self.watches.push(Arc::clone(&synced));
        synced
    }

    fn read(&self) -> RwLockReadGuard<'_, MemoryView> {
        // Writers only swap summaries in; a panic cannot leave a half-written entry.
        self.view.read().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn discover_http_routes(client: &kube::Client) -> Option<ApiResource> {
    let mut wait = Duration::from_millis(500);
    loop {
        match discovery::group(client, http_route::GROUP).await {
            Ok(group) => return group.recommended_kind(http_route::KIND).map(|(resource, _)| resource),
            Err(kube::Error::Discovery(DiscoveryError::MissingApiGroup(_))) => return None,
            Err(error) => {
                tracing::warn!(%error, "cannot ask the API server whether it serves HTTPRoutes; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Records one watch's events in the view.
struct Follower<K: Watched> {
    view: Arc<RwLock<MemoryView>>,
    synced: Arc<Synced>,
    /// Summaries of a listing in progress: the kind is replaced when it ends,
    /// so objects deleted while the watch was down disappear too.
    listing: Vec<(String, String, K::Summary)>,
}

impl<K> Follower<K>
where
    K: Watched + Debug + Send + 'static,
{
    fn new(view: Arc<RwLock<MemoryView>>, synced: Arc<Synced>) -> Self {
        Self { view, synced, listing: Vec::new() }
    }

    /// Lists the kind as a stream of watch events (WatchList), one object
    /// at a time: measured on 10,000 Pods, 2,000 Ingresses, 500 Deployments
    /// and 1,000 namespaces (bench/cluster-view-memory.sh), Defender peaks at
    /// 81 MB, against 118-122 MB listing in pages of 500 and 122-130 MB
    /// listing whole from the watch cache. An API server that does not
    /// stream lists (Kubernetes before 1.32, or WatchList off) refuses the
    /// watch as invalid; the kind is then listed in pages.
    async fn run(mut self, api: Api<K>, config: watcher::Config)
    where
        K: Clone + Debug,
    {
        let start = |config| watch(api.clone(), config).default_backoff();
        let mut events = std::pin::pin!(start(config.clone().streaming_lists()));
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(event),
                Err(error) if refuses_streaming(&error) => {
                    tracing::info!(%error, "{}: the API server does not stream lists; listing in pages", K::PLURAL);
                    events.set(start(config.clone()));
                }
                Err(error) => tracing::warn!(%error, "{} watch interrupted; retrying", K::PLURAL),
            }
        }
    }

    fn handle(&mut self, event: Event<K>) {
        match event {
            Event::Init => self.listing.clear(),
            Event::InitApply(object) => {
                let summary = object.summarize();
                if K::matters(&summary) {
                    let (namespace, name) = memory::key(&object);
                    self.listing.push((namespace, name, summary));
                }
            }
            Event::InitDone => {
                let listing = std::mem::take(&mut self.listing);
                let count = listing.len();
                self.write().replace::<K>(listing);
                if self.synced.mark() {
                    tracing::info!(count, "cluster view: {} synced", K::PLURAL);
                }
            }
            Event::Apply(object) => {
                let summary = object.summarize();
                let (namespace, name) = memory::key(&object);
                self.write().put::<K>(&namespace, &name, summary);
            }
            Event::Delete(object) => self.write().delete(&object),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, MemoryView> {
        self.view.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the API server refused to start a streaming list as invalid
/// (`sendInitialEvents` without the WatchList feature).
fn refuses_streaming(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchStartFailed(kube::Error::Api(status)) if matches!(status.code, 400 | 422))
}

impl ClusterView for LiveView {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.read().namespace(name)
    }

    fn contents(&self, namespace: &str) -> Contents {
        self.read().contents(namespace)
    }

    fn users(&self, referent: Referent, namespace: &str, name: &str) -> Vec<Referrer> {
        self.read().users(referent, namespace, name)
    }

    fn routes_to(&self, host: &str) -> Vec<Route> {
        self.read().routes_to(host)
    }

    fn serving(&self, route: &HostPath, outside: &str, limit: usize) -> Serving {
        self.read().serving(route, outside, limit)
    }

    fn unsynced(&self) -> Vec<&'static str> {
        self.watches.iter().filter(|watch| !watch.is_done()).map(|watch| watch.plural).collect()
    }

    fn lists_every_namespace(&self) -> bool {
        true
    }

    fn live_pod(&self, namespace: &str, name: &str) -> Option<bool> {
        Some(self.read().has_live_pod(namespace, name))
    }

    /// Every workload is listed, so one not held does not ask for pods;
    /// until its kind is listed once, the view cannot tell.
    fn workload_active(&self, kind: &str, namespace: &str, name: &str) -> Option<bool> {
        let plural = crate::routing::plural(kind);
        let synced = self.watches.iter().any(|watch| watch.plural == plural && watch.is_done());
        synced.then(|| self.read().holds_active_workload(kind, namespace, name))
    }

    fn dependents(&self, owner_uid: &str) -> usize {
        self.read().dependents(owner_uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use proptest::prelude::{Strategy, any};
    use serde_json::{Value, json};

    fn pod(name: &str, phase: &str, secret: &str) -> Parts<Pod> {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": secret}}]}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn follower() -> (Follower<Parts<Pod>>, Arc<RwLock<MemoryView>>) {
        let view = Arc::new(RwLock::new(MemoryView::default()));
        (Follower::new(Arc::clone(&view), Synced::new("pods")), view)
    }

    /// Lists `objects` afresh: `Init`, each one as `InitApply`, then `InitDone`.
    fn relist<'a, K>(follower: &mut Follower<K>, objects: impl IntoIterator<Item = &'a K>)
    where
        K: Watched + Clone + Debug + Send + 'static,
    {
        follower.handle(Event::Init);
        for object in objects {
            follower.handle(Event::InitApply(object.clone()));
        }
        follower.handle(Event::InitDone);
    }

    fn users(view: &RwLock<MemoryView>, secret: &str) -> Vec<String> {
        let view = view.read().unwrap();
        view.users(Referent::Secret, "prod", secret).iter().map(|user| user.name.clone()).collect()
    }

    #[test]
    fn a_listing_is_recorded_when_it_ends_and_marks_the_watch_synced() {
        let (mut follower, view) = follower();
        follower.handle(Event::Init);
        follower.handle(Event::InitApply(pod("api-1", "Running", "db")));
        follower.handle(Event::InitApply(pod("api-2", "Pending", "db")));
        assert!(users(&view, "db").is_empty(), "nothing is recorded before the listing ends");
        assert!(!follower.synced.is_done());
        follower.handle(Event::InitDone);
        assert_eq!(users(&view, "db"), ["api-1", "api-2"]);
        assert!(follower.synced.is_done());
    }

    #[test]
    fn changes_and_deletions_apply_at_once() {
        let (mut follower, view) = follower();
        relist(&mut follower, &[]);
        follower.handle(Event::Apply(pod("api-1", "Running", "db")));
        assert_eq!(users(&view, "db"), ["api-1"]);
        follower.handle(Event::Apply(pod("api-1", "Running", "db-v2")));
        assert!(users(&view, "db").is_empty());
        assert_eq!(users(&view, "db-v2"), ["api-1"]);
        // A pod that finishes uses nothing any more.
        follower.handle(Event::Apply(pod("api-1", "Succeeded", "db-v2")));
        assert!(users(&view, "db-v2").is_empty());
        follower.handle(Event::Apply(pod("api-2", "Running", "db")));
        follower.handle(Event::Delete(pod("api-2", "Running", "db")));
        assert!(users(&view, "db").is_empty());
    }

    // A model of the cluster for comparing views: every kind the live view
    // follows, each object in one of a few states. The states share Secret,
    // ConfigMap and Service names, hosts and owner uids, so the answers the
    // view joins across kinds (users, routes, dependents) have something to join.

    /// Where namespaced objects live; Namespaces are named by the first part.
    const KEYS: [(&str, &str); 3] = [("prod", "a"), ("prod", "b"), ("dev", "a")];
    const NAMESPACES: [&str; 3] = ["prod", "dev", "staging"];
    const REFERENTS: [(Referent, &str); 5] = [
        (Referent::Secret, "db"),
        (Referent::Secret, "tls"),
        (Referent::ConfigMap, "settings"),
        (Referent::Service, "web"),
        (Referent::Service, "api"),
    ];
    const HOSTS: [&str; 2] = ["shop.example.com", "api.example.com"];
    const OWNERS: [&str; 2] = ["owner-1", "owner-2"];
    const DELETING: &str = "2026-12-01T00:00:00Z";

    /// An object of kind `K` in `state`, named `namespace`/`name` (no namespace: cluster-scoped).
    fn object<K: serde::de::DeserializeOwned>(namespace: &str, name: &str, mut state: Value) -> K {
        state["metadata"]["name"] = name.into();
        if !namespace.is_empty() {
            state["metadata"]["namespace"] = namespace.into();
        }
        serde_json::from_value(state).unwrap()
    }

    /// An owner reference that keeps the owner from being deleted while the object runs.
    fn owned_by(kind: &str, uid: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": "owner", "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
    }

    fn ingress_rule(host: &str, path: &str, service: &str) -> Value {
        json!({"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}}}]}})
    }

    /// A kind the live view follows, and the states the model puts its objects in.
    trait Modelled: Watched<Summary: Debug> + Clone + Debug + Send + 'static {
        /// Named after [`NAMESPACES`] rather than [`KEYS`].
        const CLUSTER_SCOPED: bool = false;

        fn states() -> Vec<Value>;
    }

    impl Modelled for PartialObjectMeta<Namespace> {
        const CLUSTER_SCOPED: bool = true;

        fn states() -> Vec<Value> {
            vec![
                json!({"metadata": {"uid": "ns-1", "labels": {"team": "a"}}}),
                json!({"metadata": {"uid": "ns-2", "labels": {"team": "b"},
                    "annotations": {"defender.io/confirm-deletion": "yes", "note": "not kept"}}}),
                json!({"metadata": {"uid": "ns-1", "deletionTimestamp": DELETING}}),
            ]
        }
    }

    impl Modelled for Parts<Pod> {
        fn states() -> Vec<Value> {
            let env_from = |secret: &str| {
                let container = json!({"name": "app", "envFrom": [{"secretRef": {"name": secret}}]});
                json!({"containers": [container]})
            };
            vec![
                json!({"metadata": {"ownerReferences": owned_by("ReplicaSet", "owner-1")},
                    "spec": env_from("db"), "status": {"phase": "Running"}}),
                json!({"spec": {"containers": [{"name": "app"}], "imagePullSecrets": [{"name": "tls"}],
                    "volumes": [{"name": "settings", "configMap": {"name": "settings"}}]},
                    "status": {"phase": "Pending"}}),
                json!({"metadata": {"ownerReferences": owned_by("ReplicaSet", "owner-1")},
                    "spec": env_from("db"), "status": {"phase": "Succeeded"}}),
                json!({"metadata": {"ownerReferences": owned_by("ReplicaSet", "owner-2"),
                    "deletionTimestamp": DELETING}, "spec": env_from("tls"), "status": {"phase": "Running"}}),
            ]
        }
    }

    impl Modelled for Parts<Deployment> {
        fn states() -> Vec<Value> {
            vec![
                json!({"metadata": {"ownerReferences": owned_by("Application", "owner-2")},
                    "spec": {"replicas": 2}}),
                json!({"spec": {"replicas": 0}}),
                // Replicas left out default to 1.
                json!({}),
            ]
        }
    }

    impl Modelled for Parts<StatefulSet> {
        fn states() -> Vec<Value> {
            vec![
                json!({"spec": {"replicas": 1}}),
                json!({"spec": {"replicas": 0}}),
                json!({"metadata": {"deletionTimestamp": DELETING}, "spec": {"replicas": 1}}),
            ]
        }
    }

    impl Modelled for Parts<ReplicaSet> {
        fn states() -> Vec<Value> {
            vec![
                // A Deployment's: counted as the Deployment.
                json!({"metadata": {"ownerReferences": owned_by("Deployment", "owner-1")},
                    "spec": {"replicas": 1}}),
                json!({"metadata": {"ownerReferences": owned_by("Application", "owner-1")},
                    "spec": {"replicas": 3}}),
                json!({"spec": {"replicas": 0}}),
            ]
        }
    }

    impl Modelled for Parts<DaemonSet> {
        fn states() -> Vec<Value> {
            vec![
                json!({"status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 1}}),
                json!({"status": {"desiredNumberScheduled": 0}}),
            ]
        }
    }

    impl Modelled for Parts<PersistentVolumeClaim> {
        fn states() -> Vec<Value> {
            vec![json!({"status": {"phase": "Bound"}}), json!({"status": {"phase": "Pending"}})]
        }
    }

    impl Modelled for Parts<Ingress> {
        fn states() -> Vec<Value> {
            vec![
                json!({"spec": {"tls": [{"secretName": "tls"}],
                    "rules": [ingress_rule("shop.example.com", "/", "web")]}}),
                json!({"spec": {"rules": [ingress_rule("Shop.example.com.", "/v1", "api"),
                    ingress_rule("api.example.com", "/", "api")]}}),
                json!({"spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
            ]
        }
    }

    impl Modelled for HttpRoute {
        fn states() -> Vec<Value> {
            vec![
                json!({"spec": {"hostnames": ["shop.example.com"]}}),
                json!({"spec": {"hostnames": ["api.example.com"],
                    "rules": [{"matches": [{"path": {"value": "/v1"}}]}]}}),
                json!({"spec": {}}),
            ]
        }
    }

    /// One change to the cluster: the kind (its place in [`Model::watches`]),
    /// the object (its key), its new state (modulo its kind's states), or its deletion.
    type Change = (usize, usize, usize, bool);

    /// The kinds the live view follows.
    const KINDS: usize = 9;

    fn changes(most: usize) -> impl Strategy<Value = Vec<Change>> {
        proptest::collection::vec((0..KINDS, 0..KEYS.len(), 0..4usize, any::<bool>()), 0..most)
    }

    /// One kind's objects in the cluster, and the watch that follows them.
    struct ModelWatch<K: Modelled> {
        follower: Follower<K>,
        cluster: BTreeMap<(&'static str, &'static str), K>,
    }

    /// A [`ModelWatch`] of any kind.
    trait AnyWatch {
        /// The cluster changes an object; if the watch is up, it hears of it.
        fn change(&mut self, key: usize, state: usize, delete: bool, watching: bool);

        /// The watch lists its kind afresh.
        fn relist(&mut self);

        /// A new watch of the same kind, recording in `view`, that has listed this one's cluster.
        fn listed_afresh(&self, view: &Arc<RwLock<MemoryView>>) -> Box<dyn AnyWatch>;

        /// The summaries `view` holds of the kind, one line each.
        fn held(&self, view: &MemoryView) -> Vec<String>;
    }

    impl<K: Modelled> ModelWatch<K> {
        /// A watch recording in `view` that has listed `cluster`.
        fn new(
            view: &Arc<RwLock<MemoryView>>,
            cluster: BTreeMap<(&'static str, &'static str), K>,
        ) -> Box<Self> {
            let follower = Follower::new(Arc::clone(view), Synced::new(K::PLURAL));
            let mut watch = Box::new(Self { follower, cluster });
            watch.relist();
            watch
        }
    }

    impl<K: Modelled> AnyWatch for ModelWatch<K> {
        fn change(&mut self, key: usize, state: usize, delete: bool, watching: bool) {
            let key = if K::CLUSTER_SCOPED { ("", NAMESPACES[key]) } else { KEYS[key] };
            let event = if delete {
                // The API server reports the deletion of what it holds, and of nothing else.
                let Some(gone) = self.cluster.remove(&key) else { return };
                Event::Delete(gone)
            } else {
                let states = K::states();
                let object: K = object(key.0, key.1, states[state % states.len()].clone());
                self.cluster.insert(key, object.clone());
                Event::Apply(object)
            };
            if watching {
                self.follower.handle(event);
            }
        }

        fn relist(&mut self) {
            relist(&mut self.follower, self.cluster.values());
        }

        fn listed_afresh(&self, view: &Arc<RwLock<MemoryView>>) -> Box<dyn AnyWatch> {
            ModelWatch::new(view, self.cluster.clone())
        }

        fn held(&self, view: &MemoryView) -> Vec<String> {
            let summaries = K::store(view).iter();
            summaries
                .map(|(namespace, name, summary)| format!("{} {namespace}/{name}: {summary:?}", K::PLURAL))
                .collect()
        }
    }

    /// The cluster and a view following every kind the live view follows.
    struct Model {
        view: Arc<RwLock<MemoryView>>,
        watches: [Box<dyn AnyWatch>; KINDS],
    }

    impl Model {
        /// An empty cluster, every kind listed once.
        fn new() -> Self {
            let view = Arc::default();
            let watches: [Box<dyn AnyWatch>; KINDS] = [
                ModelWatch::<PartialObjectMeta<Namespace>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<Pod>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<Deployment>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<StatefulSet>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<ReplicaSet>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<DaemonSet>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<PersistentVolumeClaim>>::new(&view, BTreeMap::new()),
                ModelWatch::<Parts<Ingress>>::new(&view, BTreeMap::new()),
                ModelWatch::<HttpRoute>::new(&view, BTreeMap::new()),
            ];
            Self { view, watches }
        }

        fn change(&mut self, (kind, key, state, delete): Change, watching: bool) {
            self.watches[kind].change(key, state, delete, watching);
        }

        fn relist(&mut self) {
            self.watches.iter_mut().for_each(|watch| watch.relist());
        }

        /// A new view that has listed the cluster as it is.
        fn listed_afresh(&self) -> Model {
            let view = Arc::default();
            let watches = self.watches.each_ref().map(|watch| watch.listed_afresh(&view));
            Model { view, watches }
        }

        /// What the view holds: every summary, and the answers it joins across
        /// kinds and keeps indexes for.
        fn held(&self) -> Vec<String> {
            let view = self.view.read().unwrap();
            let mut held: Vec<String> = self.watches.iter().flat_map(|watch| watch.held(&view)).collect();
            held.sort();
            for namespace in NAMESPACES {
                held.push(format!("contents of {namespace}: {:?}", view.contents(namespace)));
                for (referent, name) in REFERENTS {
                    let users = view.users(referent, namespace, name);
                    held.push(format!("users of {referent:?} {namespace}/{name}: {users:?}"));
                }
            }
            for host in HOSTS {
                held.push(format!("routes to {host}: {:?}", view.routes_to(host)));
                let serving = view.serving(&HostPath::new(host, None), "prod", 1);
                held.push(format!("serving {host}/ outside prod: {serving:?}"));
            }
            for owner in OWNERS {
                held.push(format!("dependents of {owner}: {}", view.dependents(owner)));
            }
            held
        }
    }

    proptest::proptest! {
        /// The view a stream of watch events builds holds what a fresh
        /// listing of the resulting cluster holds, and so does a relisting
        /// after changes the watches missed while they were down.
        #[test]
        fn watched_events_and_a_relisting_give_the_same_summaries(
            heard in changes(60),
            missed in changes(20),
        ) {
            let mut watched = Model::new();
            for change in heard {
                watched.change(change, true);
            }
            proptest::prop_assert_eq!(watched.held(), watched.listed_afresh().held());
            for change in missed {
                watched.change(change, false);
            }
            watched.relist();
            proptest::prop_assert_eq!(watched.held(), watched.listed_afresh().held());
        }
    }

    #[test]
    fn only_an_invalid_streaming_watch_falls_back_to_paged_lists() {
        let status =
            |code| kube::core::Status::failure("sendInitialEvents is forbidden", "Invalid").with_code(code);
        let start = |code| watcher::Error::WatchStartFailed(kube::Error::Api(status(code).boxed()));
        assert!(refuses_streaming(&start(422)));
        assert!(refuses_streaming(&start(400)));
        assert!(!refuses_streaming(&start(403)), "forbidden: retried as it is");
        assert!(!refuses_streaming(&start(500)));
        assert!(!refuses_streaming(&watcher::Error::WatchError(status(422).boxed())));
    }

    #[test]
    fn a_relisting_forgets_objects_deleted_while_the_watch_was_down() {
        let (mut follower, view) = follower();
        relist(&mut follower, &[pod("api-1", "Running", "db"), pod("api-2", "Running", "db")]);
        follower.handle(Event::Init);
        follower.handle(Event::InitApply(pod("api-2", "Running", "db")));
        assert_eq!(users(&view, "db"), ["api-1", "api-2"], "the old state serves until the listing ends");
        follower.handle(Event::InitDone);
        assert_eq!(users(&view, "db"), ["api-2"]);
    }
}
