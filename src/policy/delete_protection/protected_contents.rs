//! A namespace is not deleted while it holds objects labelled `Always`:
//! deleting it would delete them, through the namespace controller that no
//! policy holds.

use std::collections::BTreeSet;

use crate::policy::Violation;
use crate::protected_objects::{Lookup, ProtectedObject};

/// How many protected objects a message names; the rest are counted.
pub const MAX_NAMED: usize = 5;

/// The violation of deleting `namespace` with what `lookup` found, for the
/// protection label `keys`: none when it holds no object they protect.
pub fn violation(namespace: &str, keys: &[&str], lookup: Lookup) -> Option<Violation> {
    let found = match lookup {
        Ok(found) => found,
        Err(reason) => return Some(not_looked_up(namespace, keys, &reason)),
    };
    let protected: Vec<(&ProtectedObject, Vec<(&str, &str)>)> = found
        .objects
        .iter()
        .map(|object| (object, object.protecting_labels(keys)))
        .filter(|(_, labels)| !labels.is_empty())
        .collect();
    if protected.is_empty() {
        return None;
    }
    let total = protected.len();
    let at_least = if found.at_least { "at least " } else { "" };
    let objects = if total == 1 { "object" } else { "objects" };
    let named = &protected[..total.min(MAX_NAMED)];
    let first_labels = &protected[0].1;
    let one_label = protected.iter().all(|(_, labels)| labels == first_labels) && first_labels.len() == 1;
    let (by, mut listed): (String, Vec<String>) = if one_label {
        let (key, value) = first_labels[0];
        (format!("by label {key}={value}"), named.iter().map(|(object, _)| object.describe()).collect())
    } else {
        let each = |(object, labels): &(&ProtectedObject, Vec<(&str, &str)>)| {
            let labels: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
            format!("{} ({})", object.describe(), labels.join(", "))
        };
        ("by label".to_owned(), named.iter().map(each).collect())
    };
    if total > named.len() {
        listed.push(format!("and {} more", total - named.len()));
    }
    let reason = format!(
        "namespace {namespace:?} holds {at_least}{total} {objects} protected against deletion {by} ({}), and \
         deleting it would delete them: a label other than Cascading protects an object until it is removed",
        listed.join(", ")
    );
    let unlabel: Vec<String> = named
        .iter()
        .map(|(object, labels)| {
            let removals: Vec<String> = labels.iter().map(|(key, _)| format!("{key}-")).collect();
            format!(
                "kubectl label {} {} -n {namespace} {}",
                object.kubectl_resource(),
                object.name,
                removals.join(" ")
            )
        })
        .collect();
    let mut remedy = format!(
        "If they may go with it, remove their label first ({}), then delete the namespace; or delete them one by \
         one after removing their label",
        unlabel.join("; ")
    );
    if total > named.len() || found.at_least {
        let resources: BTreeSet<String> =
            protected.iter().map(|(object, _)| object.kubectl_resource()).collect();
        let resources = resources.into_iter().collect::<Vec<_>>().join(",");
        let listings: Vec<String> =
            keys.iter().map(|key| format!("kubectl get {resources} -n {namespace} -l {key}")).collect();
        remedy.push_str(&format!(". The others are listed by: {}", listings.join("; ")));
    }
    Some(Violation::new(reason, remedy))
}

/// Refused when the objects could not be looked up: the namespace may hold some.
fn not_looked_up(namespace: &str, keys: &[&str], reason: &str) -> Violation {
    let labels: Vec<String> = keys.iter().map(|key| format!("{key}=Always")).collect();
    let listings: Vec<String> = keys
        .iter()
        .map(|key| format!("kubectl get all,secrets,configmaps -n {namespace} -l {key}"))
        .collect();
    Violation::new(
        format!(
            "namespace {namespace:?} may hold objects protected against deletion by label {}, and deleting it \
             would delete them: Defender could not look for them ({reason})",
            labels.join(" or ")
        ),
        format!(
            "Nothing was deleted. Check what it holds (for the common kinds: {}) and try again",
            listings.join("; ")
        ),
    )
}
