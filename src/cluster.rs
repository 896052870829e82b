//! The live namespace view: what the API server does not put in an
//! AdmissionReview (a namespace's labels, whether it is terminating), kept in
//! memory by a metadata-only watch so reviews never wait on an API call.
//!
//! Used only when Defender runs with cluster access (`--kubeconfig`, or in a
//! Pod); the harness and the CLI stay offline with their declared namespaces.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::namespaces::{NamespaceInfo, NamespaceLookup};

/// A client for the cluster Defender runs in, or the one a kubeconfig names.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::incluster()
            .map_err(|e| anyhow::anyhow!("cannot use the in-cluster service account: {e}"))?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Namespaces as the API server last reported them.
pub struct ClusterNamespaces {
    store: Store<PartialObjectMeta<Namespace>>,
    synced: Arc<AtomicBool>,
}

impl ClusterNamespaces {
    /// Starts watching namespaces on the current tokio runtime. The watch
    /// reconnects with backoff for as long as the process runs.
    pub fn watch(client: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        // Metadata only: labels and deletionTimestamp are all policies need.
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    tracing::warn!(%error, "namespace watch interrupted; retrying");
                }
            }
        });
        let synced = Arc::new(AtomicBool::new(false));
        let ready = store.clone();
        let flag = Arc::clone(&synced);
        tokio::spawn(async move {
            if ready.wait_until_ready().await.is_ok() {
                tracing::info!(namespaces = ready.len(), "namespace view synced");
                flag.store(true, Ordering::Release);
            }
        });
        Self { store, synced }
    }
}

impl NamespaceLookup for ClusterNamespaces {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        let namespace = self.store.get(&ObjectRef::new(name))?;
        Some(Arc::new(NamespaceInfo {
            labels: namespace.metadata.labels.clone().unwrap_or_default(),
            terminating: namespace.metadata.deletion_timestamp.is_some(),
        }))
    }

    fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}
