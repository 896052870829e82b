//! How much the view keeps of one object, whatever the object holds.
//!
//! The view lives in a container with a memory limit, and anyone who can
//! create an Ingress, a Pod or a Namespace decides what it holds. So every
//! string it keeps has a length cap and every per-object list a count cap.
//! The caps follow Kubernetes' own limits where there are some, so nothing
//! a valid object holds is cut, except for counts Kubernetes does not limit.
//!
//! A string over its cap keeps its beginning and a hash of the whole, so two
//! different long strings never compare equal and one string always maps to
//! the same bounded form (requests and the view cut alike).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::selector::Labels;

/// Object and namespace names: a DNS subdomain, as Kubernetes validates most names.
pub const MAX_NAME: usize = 253;
/// Hosts: a DNS name.
pub const MAX_HOST: usize = 253;
/// Paths: the Gateway API's limit for a path match (Kubernetes sets none for Ingress paths).
pub const MAX_PATH: usize = 1024;
/// Label keys: a 253-character DNS prefix, `/`, a 63-character name.
pub const MAX_LABEL_KEY: usize = 317;
/// Label values, as Kubernetes validates them.
pub const MAX_LABEL_VALUE: usize = 63;
/// Labels kept per Namespace (Kubernetes sets no count).
pub const MAX_LABELS: usize = 64;
/// Host and path pairs kept per Ingress or route.
pub const MAX_ROUTES: usize = 100;
/// Secrets, ConfigMaps and Services kept per Pod or Ingress using them.
pub const MAX_REFERENCES: usize = 100;

/// Labels that Defender's own policies read are kept before any other.
const DEFENDER_LABELS: &str = "defender.io/";

/// `text` if it fits in `max` bytes, else its beginning, `…` and a hash of the whole.
pub fn text(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let suffix = format!("…{:016x}", hasher.finish());
    let mut end = max.saturating_sub(suffix.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{suffix}", &text[..end]))
}

/// `text` bounded, as an owned string.
pub fn owned(value: &str, max: usize) -> String {
    text(value, max).into_owned()
}

/// `value` bounded, reusing it when it fits.
pub fn string(value: String, max: usize) -> String {
    if value.len() <= max { value } else { owned(&value, max) }
}

/// The first `max` items in order, and whether any were left out.
pub fn first<T>(items: BTreeSet<T>, max: usize) -> (Box<[T]>, bool) {
    let truncated = items.len() > max;
    (items.into_iter().take(max).collect(), truncated)
}

/// At most [`MAX_LABELS`] labels, each bounded: Defender's own (`defender.io/`)
/// first, then the others in key order. Also whether any were left out.
pub fn labels(labels: &Labels) -> (Labels, bool) {
    let defender = labels.iter().filter(|(key, _)| key.starts_with(DEFENDER_LABELS));
    let others = labels.iter().filter(|(key, _)| !key.starts_with(DEFENDER_LABELS));
    let kept = defender
        .chain(others)
        .take(MAX_LABELS)
        .map(|(key, value)| (owned(key, MAX_LABEL_KEY), owned(value, MAX_LABEL_VALUE)))
        .collect();
    (kept, labels.len() > MAX_LABELS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_within_its_cap_is_kept_as_is() {
        let name = "a".repeat(MAX_NAME);
        assert!(matches!(text(&name, MAX_NAME), Cow::Borrowed(kept) if kept == name));
    }

    #[test]
    fn a_long_string_keeps_its_beginning_and_stays_distinct() {
        let long = format!("/{}", "a".repeat(5000));
        let other = format!("/{}b", "a".repeat(5000));
        let (cut, cut_other) = (text(&long, MAX_PATH), text(&other, MAX_PATH));
        assert!(cut.len() <= MAX_PATH, "{}", cut.len());
        assert!(cut.starts_with("/aaaa") && cut.contains('…'));
        assert_ne!(cut, cut_other, "two long strings with one beginning stay apart");
        assert_eq!(cut, text(&long, MAX_PATH), "one string is always cut alike");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let long = "é".repeat(MAX_LABEL_VALUE);
        let cut = text(&long, MAX_LABEL_VALUE);
        assert!(cut.len() <= MAX_LABEL_VALUE && cut.starts_with('é'), "{cut}");
    }

    #[test]
    fn lists_keep_the_first_items_and_say_when_some_were_left_out() {
        let (kept, truncated) = first((0..MAX_ROUTES + 5).collect(), MAX_ROUTES);
        assert_eq!((kept.len(), kept[0], truncated), (MAX_ROUTES, 0, true));
        let (kept, truncated) = first((0..3).collect(), MAX_ROUTES);
        assert_eq!((kept.len(), truncated), (3, false));
    }

    #[test]
    fn labels_are_capped_keeping_defenders_own_first() {
        let mut many: Labels = (0..MAX_LABELS * 2).map(|i| (format!("a-{i:03}"), "x".to_owned())).collect();
        many.insert("defender.io/deletion-allowed".into(), "true".into());
        many.insert("team".into(), "v".repeat(100));
        let (kept, truncated) = labels(&many);
        assert!(truncated);
        assert_eq!(kept.len(), MAX_LABELS);
        assert_eq!(kept.get("defender.io/deletion-allowed").map(String::as_str), Some("true"));
        let (few, truncated) = labels(&[("team".to_owned(), "v".repeat(100))].into());
        assert!(!truncated);
        assert!(few["team"].len() <= MAX_LABEL_VALUE);
    }
}
