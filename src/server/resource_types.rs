//! The namespaced resource types the API server serves that can be listed,
//! as discovery last reported them: what a namespace's deletion would take
//! with it, so what protected objects are looked for in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};

/// How long discovered resource types are trusted by a lookup: a type added
/// since is looked at once this has passed. The index's keeper refreshes
/// them far more often ([`ResourceTypes::refresh`]), so this only applies
/// while discovery fails.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(60);

/// One namespaced resource type that can be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub resource: ApiResource,
    /// It can be watched too (almost every type can).
    pub watchable: bool,
}

/// The namespaced, listable resource types, discovered at most
/// [`DISCOVERY_TTL`] ago.
pub struct ResourceTypes {
    client: kube::Client,
    discovered: Mutex<Option<Discovered>>,
}

struct Discovered {
    at: Instant,
    types: Arc<Vec<ResourceType>>,
}

impl ResourceTypes {
    pub fn new(client: kube::Client) -> Self {
        Self { client, discovered: Mutex::new(None) }
    }

    /// The types as discovered at most [`DISCOVERY_TTL`] ago, asking the
    /// API server again when that has passed.
    pub async fn listable(&self) -> Result<Arc<Vec<ResourceType>>, String> {
        match self.cached() {
            Some(types) => Ok(types),
            None => self.refresh().await,
        }
    }

    /// The types discovered at most [`DISCOVERY_TTL`] ago, without asking:
    /// `None` when discovery is due.
    pub fn cached(&self) -> Option<Arc<Vec<ResourceType>>> {
        let discovered = self.discovered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        discovered.as_ref().filter(|d| d.at.elapsed() < DISCOVERY_TTL).map(|d| Arc::clone(&d.types))
    }

    /// Asks the API server for the types now.
    pub async fn refresh(&self) -> Result<Arc<Vec<ResourceType>>, String> {
        // Aggregated discovery takes two requests; older API servers need one per group.
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(discovery) => discovery,
            Err(_) => Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(|error| format!("discovering the API server's resource types failed: {error}"))?,
        };
        let types: Vec<ResourceType> = discovery
            .groups()
            .flat_map(|group| group.recommended_resources())
            .filter(|(_, capabilities)| {
                capabilities.scope == Scope::Namespaced && capabilities.supports_operation(verbs::LIST)
            })
            .map(|(resource, capabilities)| ResourceType {
                resource,
                watchable: capabilities.supports_operation(verbs::WATCH),
            })
            .collect();
        let types = Arc::new(types);
        let mut discovered = self.discovered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *discovered = Some(Discovered { at: Instant::now(), types: Arc::clone(&types) });
        Ok(types)
    }
}

/// How messages name a resource type: `secrets`, `certificates.cert-manager.io`.
pub fn resource_name(resource: &ApiResource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}
