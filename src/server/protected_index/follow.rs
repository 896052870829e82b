//! Keeping one pair current: list its objects, watch from that list's
//! version, and list again whenever the watch is lost.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::{ListParams, VersionMatch, WatchEvent, WatchParams};
use kube::core::DynamicObject;
use tokio::sync::Semaphore;

use crate::server::protected_index::held::{self, Held, Objects, PairState};
use crate::server::protected_index::lock;
use crate::server::resource_types::resource_name;

/// How long each watch request lasts before it is made again from where it
/// stopped. The watch cache sends a bookmark just before it ends one, so a
/// quiet pair is still heard from at least this often ([`held::FRESH_FOR`]).
const WATCH_SECONDS: u32 = 30;
/// A watch silent for longer than its own timeout and this is lost.
const SILENCE_GRACE: Duration = Duration::from_secs(10);
/// A watch ended this close to its timeout ended at it.
const END_SLACK: Duration = Duration::from_secs(3);
/// Watches in a row that end early, with nothing said, before the pair is
/// listed again: an API server that cannot send some event ends the watch
/// each time it gets to it.
const EARLY_ENDS: u32 = 3;
/// The most a list page or a watch request may take to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a watch must have held for its loss to count as an accident
/// (listed again at once) rather than one more failure (listed again later).
const HEALTHY_WATCH: Duration = Duration::from_secs(10);
/// The pause after a pair was refused or found too large: neither changes often.
const LONG_PAUSE: Duration = Duration::from_secs(300);
/// Objects listed per page when a pair is listed.
const LIST_PAGE: u32 = 500;

/// Lists then watches one pair for as long as the index wants it (while
/// `held` lives), listing again after a pause whenever the watch is lost.
/// `lists` bounds the pairs listing at once (every pair lists at start).
pub async fn follow(api: Api<DynamicObject>, key: String, held: Weak<Mutex<Held>>, lists: Arc<Semaphore>) {
    let resource = match held.upgrade() {
        Some(slot) => lock(&slot).resource().clone(),
        None => return,
    };
    let mut failures = 0u32;
    loop {
        let stopped = list_then_watch(&api, &key, &held, &lists).await;
        let Some(slot) = held.upgrade() else { return };
        lock(&slot).forget(stopped.state);
        drop(slot);
        // A watch that held for a while simply ended badly; one that fails
        // as soon as it starts is failing.
        let held_a_while = stopped.watched_since.is_some_and(|since| since.elapsed() >= HEALTHY_WATCH);
        failures = if held_a_while { 0 } else { failures + 1 };
        let (resource, reason) = (resource_name(&resource), &stopped.reason);
        if failures <= 1 {
            tracing::warn!(
                %resource, key = %key, %reason,
                "the protected-object index lost a watch: that type is listed live until it is watched again"
            );
        } else {
            tracing::debug!(%resource, key = %key, %reason, "the protected-object index still lacks a watch");
        }
        let pause = match stopped.state {
            PairState::TooMany | PairState::Forbidden => LONG_PAUSE,
            PairState::Listing | PairState::Watching => pause(failures),
        };
        tokio::time::sleep(pause).await;
    }
}

/// Why a pair's watch stopped, what it is now, and since when it had been watching.
struct Stopped {
    reason: String,
    state: PairState,
    watched_since: Option<Instant>,
}

impl Stopped {
    fn lost(reason: impl Into<String>, watched_since: Option<Instant>) -> Self {
        Self { reason: reason.into(), state: PairState::Listing, watched_since }
    }

    /// A request failed: refused (403) leaves the pair forbidden.
    fn failed(what: &str, error: &kube::Error, watched_since: Option<Instant>) -> Self {
        let state = match error {
            kube::Error::Api(status) if status.code == 403 => PairState::Forbidden,
            _ => PairState::Listing,
        };
        Self { reason: format!("{what} failed: {error}"), state, watched_since }
    }

    fn too_many(reason: String, watched_since: Option<Instant>) -> Self {
        Self { reason, state: PairState::TooMany, watched_since }
    }
}

async fn list_then_watch(
    api: &Api<DynamicObject>,
    key: &str,
    held: &Weak<Mutex<Held>>,
    lists: &Semaphore,
) -> Stopped {
    let listed = {
        // A closed semaphore never happens: it lives in the index.
        let _permit = lists.acquire().await;
        list(api, key, held).await
    };
    let mut version = match listed {
        Ok(version) => version,
        Err(stopped) => return stopped,
    };
    let params = WatchParams::default().labels(key).timeout(WATCH_SECONDS);
    let silence = Duration::from_secs(u64::from(WATCH_SECONDS)) + SILENCE_GRACE;
    let (mut watched_since, mut early_ends) = (None, 0);
    loop {
        let events = match tokio::time::timeout(REQUEST_TIMEOUT, api.watch_metadata(&params, &version)).await
        {
            Ok(Ok(events)) => events,
            Ok(Err(error)) => return Stopped::failed("watching", &error, watched_since),
            Err(_) => return Stopped::lost("the API server did not answer the watch", watched_since),
        };
        let opened = Instant::now();
        let since = *watched_since.get_or_insert(opened);
        let mut events = std::pin::pin!(events);
        loop {
            let event = match tokio::time::timeout(silence, events.next()).await {
                Err(_) => return Stopped::lost(format!("the watch was silent for {silence:?}"), Some(since)),
                Ok(None) => break,
                Ok(Some(Err(error))) => return Stopped::failed("the watch", &error, Some(since)),
                Ok(Some(Ok(event))) => event,
            };
            let Some(slot) = held.upgrade() else { return Stopped::lost("no longer wanted", Some(since)) };
            let mut held = lock(&slot);
            early_ends = 0;
            match event {
                WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                    version = object.metadata.resource_version.clone().unwrap_or(version);
                    if let Err(reason) = held.present(object.metadata) {
                        return Stopped::too_many(reason, Some(since));
                    }
                }
                WatchEvent::Deleted(object) => {
                    version = object.metadata.resource_version.clone().unwrap_or(version);
                    held.gone(object.metadata);
                }
                WatchEvent::Bookmark(bookmark) => {
                    version = bookmark.metadata.resource_version;
                    held.heard();
                }
                // 410 Gone included: what changed since `version` is no longer known.
                WatchEvent::Error(status) => {
                    return Stopped::lost(format!("the watch ended: {}", status.message), Some(since));
                }
            }
        }
        // The request's own timeout ends it: the API server was there to end
        // it, and the next request goes on from `version`. Ending early
        // with nothing said, again and again, is a watch that cannot go on.
        if opened.elapsed() + END_SLACK >= Duration::from_secs(u64::from(WATCH_SECONDS)) {
            let Some(slot) = held.upgrade() else { return Stopped::lost("no longer wanted", Some(since)) };
            lock(&slot).heard();
        } else {
            early_ends += 1;
            if early_ends >= EARLY_ENDS {
                return Stopped::lost(format!("{EARLY_ENDS} watches in a row ended early"), Some(since));
            }
        }
    }
}

/// Lists every object of the pair's type carrying `key`, cluster-wide, from
/// the API server's watch cache, into `held`, which then answers; returns
/// the version to watch from.
async fn list(api: &Api<DynamicObject>, key: &str, held: &Weak<Mutex<Held>>) -> Result<String, Stopped> {
    let Some(slot) = held.upgrade() else { return Err(Stopped::lost("no longer wanted", None)) };
    let resource = lock(&slot).resource().clone();
    drop(slot);
    let mut objects = Objects::new();
    // The first page from the watch cache as it stands (any version not
    // older than the first), as the lookups' own lists are read; the next
    // pages from the same snapshot, which their token names.
    let mut params =
        ListParams::default().labels(key).limit(LIST_PAGE).matching(VersionMatch::NotOlderThan).at("1");
    loop {
        let page = match tokio::time::timeout(REQUEST_TIMEOUT, api.list_metadata(&params)).await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return Err(Stopped::failed("listing", &error, None)),
            Err(_) => return Err(Stopped::lost("the API server did not answer the list", None)),
        };
        for item in page.items {
            let (key, entry) = held::entry(&resource, item.metadata);
            objects.insert(key, entry);
        }
        // Checked page by page: a flood is not listed to its end.
        held::within_pair_bound(&objects).map_err(|reason| Stopped::too_many(reason, None))?;
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => {
                params = ListParams::default().labels(key).limit(LIST_PAGE).continue_token(&token);
            }
            None => {
                let version = page
                    .metadata
                    .resource_version
                    .ok_or_else(|| Stopped::lost("the list named no resourceVersion", None))?;
                let Some(slot) = held.upgrade() else { return Err(Stopped::lost("no longer wanted", None)) };
                lock(&slot).listed(objects).map_err(|reason| Stopped::too_many(reason, None))?;
                return Ok(version);
            }
        }
    }
}

/// The pause before listing a pair again: short after a watch that held
/// (its request simply ended badly), growing to a minute while the pair
/// keeps failing.
fn pause(failures: u32) -> Duration {
    match failures {
        0 => Duration::from_millis(200),
        n => Duration::from_secs(1 << (n.min(7) - 1)).min(Duration::from_secs(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_while_failing_up_to_a_minute() {
        let pauses: Vec<u128> = (0..10).map(|n| pause(n).as_millis()).collect();
        assert_eq!(pauses, [200, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    }

    #[test]
    fn a_quiet_pair_is_heard_from_before_it_stops_answering() {
        // The bookmark before a watch's timeout, or its end, comes within a
        // watch; the next one after the re-watch, a watch later.
        assert!(Duration::from_secs(u64::from(WATCH_SECONDS)) + END_SLACK < held::FRESH_FOR);
        assert!(Duration::from_secs(u64::from(WATCH_SECONDS)) + SILENCE_GRACE <= held::FRESH_FOR);
    }
}
