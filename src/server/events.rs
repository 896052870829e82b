//! Kubernetes Events for denied deletions, so `kubectl describe` and event
//! dashboards show that Defender stopped one, not only the client that tried.
//!
//! Recording never delays an answer: the handler hands the event to a small
//! queue and one task publishes it. Two limits keep a deletion loop from
//! flooding etcd: one event per object per minute, and a cluster-wide rate.
//! Dry runs record nothing (the webhook declares sideEffects NoneOnDryRun).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::ObjectReference;
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

pub struct DenialEvents {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    per_object: DefaultKeyedRateLimiter<String>,
    overall: DefaultDirectRateLimiter,
}

impl DenialEvents {
    /// Starts the publishing task on the current runtime. `instance` names
    /// this replica in the events (its pod name).
    pub fn start(client: kube::Client, instance: String) -> Self {
        let recorder =
            Recorder::new(client, Reporter { controller: "defender".into(), instance: Some(instance) });
        let (queue, mut pending) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        tokio::spawn(async move {
            while let Some((event, reference)) = pending.recv().await {
                if let Err(error) = recorder.publish(&event, &reference).await {
                    tracing::warn!(%error, "could not record a DeletionDenied event");
                }
            }
        });
        Self {
            queue,
            per_object: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            overall: RateLimiter::direct(Quota::per_minute(nonzero(60)).allow_burst(nonzero(20))),
        }
    }

    /// Queues an event if `decision` denied a real (not dry-run) deletion and
    /// the limits allow one.
    pub fn record(&self, request: &Request, decision: &Decision) {
        if decision.allowed() || !request.is_delete() || request.dry_run() {
            return;
        }
        let (Some(reference), Some(message)) = (reference(request), decision.denial_message()) else {
            return;
        };
        let object =
            format!("{}/{}", reference.kind.as_deref().unwrap_or_default(), request.object_identity());
        if self.per_object.len() > SWEEP_ABOVE_OBJECTS {
            self.per_object.retain_recent();
        }
        if self.per_object.check_key(&object).is_err() || self.overall.check().is_err() {
            return;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: REASON.into(),
            note: Some(truncate(&message, MAX_NOTE_BYTES)),
            action: "Delete".into(),
            secondary: None,
        };
        if self.queue.try_send((event, reference)).is_err() {
            tracing::debug!("event queue full; dropped a DeletionDenied event");
        }
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
        namespace: request.namespace().map(str::to_owned),
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
    fn truncate_respects_the_byte_cap_and_character_boundaries() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(1000);
        let cut = truncate(&long, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with('…'));
    }
}
