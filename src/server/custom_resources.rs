//! Counting a CustomResourceDefinition's objects, just before a review that
//! would delete the definition is judged.
//!
//! The live view cannot hold every custom resource of every definition, and
//! needs to only when a definition is about to go: then one metadata-only,
//! paged list (bounded in pages and in time) counts them. It runs on the
//! async runtime, before the engine, so the engine stays free of I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Api;
use kube::api::ListParams;
use kube::core::DynamicObject;

use crate::custom_resources::{Counted, CustomResourceType, MAX_PAGES, ObjectCount, PAGE_SIZE, Prefetched};
use crate::request::Request;
use crate::server::lookups;

/// Counts custom resources through the API server.
#[derive(Clone)]
pub struct CustomResourceCounter {
    client: kube::Client,
    /// The most one count may take; a slower API server means a refusal.
    timeout: Duration,
}

impl CustomResourceCounter {
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// Counts `of`'s objects, within the lookup's time bound.
    async fn count_within(&self, of: &CustomResourceType) -> Counted {
        lookups::within(self.timeout, self.count(of)).await
    }

    async fn count(&self, of: &CustomResourceType) -> Counted {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &of.api_resource());
        let mut params = ListParams::default().limit(PAGE_SIZE);
        let (mut objects, mut namespaces) = (0, BTreeSet::new());
        for _ in 0..MAX_PAGES {
            let page = api
                .list_metadata(&params)
                .await
                .map_err(|error| lookups::listing_failed(&format!("{}.{}", of.plural, of.group), &error))?;
            objects += page.items.len();
            namespaces.extend(page.items.into_iter().filter_map(|item| item.metadata.namespace));
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(ObjectCount { objects, namespaces: namespaces.len(), at_least: false }),
            }
        }
        Ok(ObjectCount { objects, namespaces: namespaces.len(), at_least: true })
    }
}

/// The count a request needs before it is judged: the objects of the
/// definition it deletes, if it deletes one. Without a cluster connection
/// nothing can be counted, and the deletion is refused.
pub async fn prefetch(counter: Option<&CustomResourceCounter>, request: &Request) -> Option<Prefetched> {
    let of = CustomResourceType::deleted_by(request)?;
    let count = match counter {
        Some(counter) => counter.count_within(&of).await,
        None => Err("Defender runs without a connection to the cluster, so it cannot count them".to_owned()),
    };
    if let Err(reason) = &count {
        tracing::warn!(definition = of.definition, reason, "custom resources not counted");
    }
    Some(Prefetched { of, count })
}
