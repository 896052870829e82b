//! The build fails when a field Defender reads is one the parse skips.
//!
//! Every policy kind in [`crate::policy::registry::KINDS`] states the object
//! fields it reads, and [`crate::policy::reads`] lists those of the other
//! readers; the parse ([`super::object`]) names what it keeps and what it
//! skips. This compares them when the crate is compiled: the error names the
//! first read the parse would leave out, and either the parse keeps it or
//! the reader does without.

use super::object::{CONFIG_MAP_VALUES, KEPT_METADATA, LAST_APPLIED, SECRET_VALUES, SKIPPED};
use crate::policy::reads::OBJECT_READS;
use crate::policy::registry::KINDS;

const _: () = if let Some(path) = first_read_not_kept() {
    panic!("{}", path);
};

/// The first path a policy kind or another reader reads that the parse does not keep.
const fn first_read_not_kept() -> Option<&'static str> {
    let mut kind = 0;
    while kind < KINDS.len() {
        if let Some(path) = first_not_kept(KINDS[kind].reads) {
            return Some(path);
        }
        kind += 1;
    }
    let mut reader = 0;
    while reader < OBJECT_READS.len() {
        if let Some(path) = first_not_kept(OBJECT_READS[reader].1) {
            return Some(path);
        }
        reader += 1;
    }
    None
}

/// The first of `paths` the parse does not keep.
const fn first_not_kept(paths: &[&'static str]) -> Option<&'static str> {
    let mut path = 0;
    while path < paths.len() {
        if !is_kept(paths[path]) {
            return Some(paths[path]);
        }
        path += 1;
    }
    None
}

/// Whether the parse keeps the field at `path` (`metadata.labels`, `spec.replicas`).
pub const fn is_kept(path: &str) -> bool {
    let (field, rest) = split(path.as_bytes());
    if same(field, b"metadata") {
        let (field, rest) = split(rest);
        // kubectl's copy of a Secret's or ConfigMap's values goes with them.
        let last_applied = same(field, b"annotations") && same(rest, LAST_APPLIED.as_bytes());
        return listed(field, KEPT_METADATA) && !last_applied;
    }
    // The values of core Secrets and ConfigMaps are never kept: reading a
    // field of that name is refused for every kind, to be safe.
    !listed(field, SKIPPED) && !listed(field, SECRET_VALUES) && !listed(field, CONFIG_MAP_VALUES)
}

/// The part of `path` before its first dot, and the part after it.
const fn split(path: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    while at < path.len() {
        if path[at] == b'.' {
            let (field, rest) = path.split_at(at);
            return (field, rest.split_at(1).1);
        }
        at += 1;
    }
    (path, &[])
}

const fn listed(field: &[u8], names: &[&str]) -> bool {
    let mut at = 0;
    while at < names.len() {
        if same(field, names[at].as_bytes()) {
            return true;
        }
        at += 1;
    }
    false
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut at = 0;
    while at < a.len() {
        if a[at] != b[at] {
            return false;
        }
        at += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_kept_fields_from_skipped_ones() {
        for kept in ["metadata.labels", "metadata.annotations.note", "spec", "spec.replicas", "type"] {
            assert!(is_kept(kept), "{kept}");
        }
        let last_applied = format!("metadata.annotations.{LAST_APPLIED}");
        for skipped in ["status", "status.phase", "metadata.managedFields", "metadata", "data", &last_applied]
        {
            assert!(!is_kept(skipped), "{skipped}");
        }
    }

    #[test]
    fn every_read_is_kept() {
        assert_eq!(first_read_not_kept(), None);
        assert_eq!(first_not_kept(&["spec", "status.phase"]), Some("status.phase"));
    }
}
