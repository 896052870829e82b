//! Kubernetes Events for denied deletions, so `kubectl describe` and event
//! dashboards show that Defender stopped one, not only the client that tried.
//!
//! Recording never delays an answer: the handler hands the event to a small
//! queue and one task publishes it. Two limits keep a deletion loop from
//! flooding etcd: one event per object per minute, and a cluster-wide rate.
//! Dry runs record nothing (the webhook declares sideEffects NoneOnDryRun).
//! Anyone who can reach Defender's port can send a review, so an event is
//! recorded only once the API server confirms the object exists with the
//! uid the review names: a forged review writes nothing to the cluster.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::engine::Decision;
use crate::request::Request;

/// The reason `kubectl describe` shows.
const REASON: &str = "DeletionDenied";
/// Events waiting to be published; beyond this, new ones are dropped.
const QUEUE: usize = 64;
/// An Event's note is capped at 1 kB by the API server.
const MAX_NOTE_BYTES: usize = 1024;
/// Per-object limiter entries kept before idle ones are swept.
const SWEEP_ABOVE_OBJECTS: usize = 10_000;

/// A denial waiting to be corroborated and recorded.
struct Denial {
    event: Event,
    reference: ObjectReference,
    /// The API resource the object is served as, for the corroborating read.
    resource: ApiResource,
    /// Identifies the object for the per-object limit.
    key: String,
}

pub struct DenialEvents {
    queue: mpsc::Sender<Denial>,
}

impl DenialEvents {
    /// Starts the publishing task on the current runtime. `instance` names
    /// this replica in the events (its pod name). `authenticated`: every
    /// review comes from a client with a certificate (`--client-ca`), so
    /// there is nothing to corroborate.
    pub fn start(client: kube::Client, instance: String, authenticated: bool) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter { controller: "defender".into(), instance: Some(instance) },
        );
        let (queue, mut pending) = mpsc::channel::<Denial>(QUEUE);
        tokio::spawn(async move {
            let mut limits = Limits::new();
            while let Some(denial) = pending.recv().await {
                if !authenticated && let Err(why) = corroborate(&client, &denial).await {
                    tracing::info!(
                        object = denial.key,
                        "no DeletionDenied event for a review the API server does not corroborate: {why}"
                    );
                    continue;
                }
                if !limits.allow(&denial.key) {
                    continue;
                }
                if let Err(error) = recorder.publish(&denial.event, &denial.reference).await {
                    tracing::warn!(%error, "could not record a DeletionDenied event");
                }
            }
        });
        Self { queue }
    }

    /// Queues an event if `decision` denied a real (not dry-run) deletion.
    pub fn record(&self, request: &Request, decision: &Decision) {
        if decision.allowed() || !request.is_delete() || request.dry_run() {
            return;
        }
        let (Some(reference), Some(message)) = (reference(request), decision.denial_message()) else {
            return;
        };
        let key = format!("{}/{}", reference.kind.as_deref().unwrap_or_default(), request.object_identity());
        let event = Event {
            type_: EventType::Warning,
            reason: REASON.into(),
            note: Some(truncate(&message, MAX_NOTE_BYTES)),
            action: "Delete".into(),
            secondary: None,
        };
        let denial = Denial { event, reference, resource: api_resource(request), key };
        if self.queue.try_send(denial).is_err() {
            tracing::debug!("event queue full; dropped a DeletionDenied event");
        }
    }
}

/// One event per object per minute, and a cluster-wide rate.
struct Limits {
    per_object: DefaultKeyedRateLimiter<String>,
    overall: DefaultDirectRateLimiter,
}

impl Limits {
    fn new() -> Self {
        Self {
            per_object: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            overall: RateLimiter::direct(Quota::per_minute(nonzero(60)).allow_burst(nonzero(20))),
        }
    }

    fn allow(&mut self, key: &str) -> bool {
        if self.per_object.len() > SWEEP_ABOVE_OBJECTS {
            self.per_object.retain_recent();
        }
        self.per_object.check_key(&key.to_owned()).is_ok() && self.overall.check().is_ok()
    }
}

/// The resource a review names, as kube addresses it.
fn api_resource(request: &Request) -> ApiResource {
    let inner = request.inner();
    let (group, version) = (&inner.resource.group, &inner.resource.version);
    ApiResource {
        group: group.clone(),
        version: version.clone(),
        api_version: if group.is_empty() { version.clone() } else { format!("{group}/{version}") },
        kind: inner.kind.kind.clone(),
        plural: inner.resource.resource.clone(),
    }
}

/// Reads the object's metadata from the API server and compares uids.
async fn corroborate(client: &kube::Client, denial: &Denial) -> Result<(), String> {
    let reference = &denial.reference;
    let name = reference.name.as_deref().unwrap_or_default();
    let api: Api<DynamicObject> = match &reference.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &denial.resource),
        None => Api::all_with(client.clone(), &denial.resource),
    };
    let stored = api.get_metadata_opt(name).await.map_err(|error| format!("cannot read it: {error}"))?;
    let Some(stored) = stored else {
        return Err("no such object".to_owned());
    };
    match (&stored.metadata.uid, &reference.uid) {
        (Some(stored), Some(claimed)) if stored == claimed => Ok(()),
        (_, None) => Err("the review names no uid".to_owned()),
        _ => Err("the object has another uid".to_owned()),
    }
}

/// The object a DELETE review is about, as an Event refers to it. A
/// collection-level review names no single object and gets no event.
fn reference(request: &Request) -> Option<ObjectReference> {
    let name = request.name();
    if name.is_empty() {
        return None;
    }
    let kind = &request.inner().kind;
    let api_version =
        if kind.group.is_empty() { kind.version.clone() } else { format!("{}/{}", kind.group, kind.version) };
    Some(ObjectReference {
        api_version: Some(api_version),
        kind: Some(kind.kind.clone()),
        name: Some(name.to_owned()),
        // The API server names a Namespace as its own namespace; the object
        // itself is cluster-scoped, and is read and referred to as such.
        namespace: request.namespace().filter(|_| !request.is_kind("", "Namespace")).map(str::to_owned),
        uid: request.target().and_then(|object| object.metadata.uid.clone()),
        ..ObjectReference::default()
    })
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_referred_to_without_a_namespace() {
        let review = include_str!("../../tests/fixtures/review-delete-kube-system.json");
        let request = crate::admission::parse_review(review.as_bytes()).unwrap();
        assert_eq!(request.namespace(), Some("kube-system"), "as the API server sends it");
        let reference = reference(&request).unwrap();
        assert_eq!(
            (reference.kind.as_deref(), reference.name.as_deref()),
            (Some("Namespace"), Some("kube-system"))
        );
        assert_eq!(reference.namespace, None);
    }

    #[test]
    fn truncate_respects_the_byte_cap_and_character_boundaries() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(1000);
        let cut = truncate(&long, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with('…'));
    }
}
