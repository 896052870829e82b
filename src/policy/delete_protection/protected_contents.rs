//! A namespace is not deleted while it holds objects that would refuse their
//! own deletion: deleting it would delete them, through the namespace
//! controller that no policy holds. Objects labelled `Always` (or a value not
//! understood) always hold it; objects labelled `Cascading` while deleting
//! them would take something with it, judged as their own deletion is.

use std::collections::BTreeSet;

use crate::policy::Violation;
use crate::protected_objects::{Found, Lookup, PAGE_SIZE, ProtectedObject};
use crate::view::ClusterView;

/// How many protected objects a message names; the rest are counted.
pub const MAX_NAMED: usize = 5;

/// One object that holds its namespace, and why.
struct Held<'a> {
    object: &'a ProtectedObject,
    /// The protection labels that hold it.
    labels: Vec<(&'a str, &'a str)>,
    /// For an object labelled only `Cascading`: what deleting it would take.
    takes: Option<String>,
}

impl Held<'_> {
    /// `deployment "shop/web"`, with its labels when they differ from the
    /// other objects' and what it would take.
    fn describe(&self, with_labels: bool) -> String {
        let labels: Vec<String> = self.labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        match (with_labels, &self.takes) {
            (true, Some(takes)) => format!("{} ({}: {takes})", self.object.describe(), labels.join(", ")),
            (true, None) => format!("{} ({})", self.object.describe(), labels.join(", ")),
            (false, Some(takes)) => format!("{} (Cascading: {takes})", self.object.describe()),
            (false, None) => self.object.describe(),
        }
    }
}

/// Whether `object` holds its namespace: labelled to be kept until the
/// label is removed, or labelled `Cascading` and deleting it would take
/// something with it, as far as `view` knows.
fn held<'a>(object: &'a ProtectedObject, keys: &[&str], view: &dyn ClusterView) -> Option<Held<'a>> {
    let labels = object.protecting_labels(keys);
    if !labels.is_empty() {
        return Some(Held { object, labels, takes: None });
    }
    let labels = object.cascading_labels(keys);
    if labels.is_empty() {
        return None;
    }
    let takes = takes_with_it(object, view)?;
    Some(Held { object, labels, takes: Some(takes) })
}

/// What deleting an object labelled `Cascading` would take with it, judged as
/// its own deletion is: a workload's pods (when the view cannot tell, it is
/// taken to have some), any other object's running dependents.
fn takes_with_it(object: &ProtectedObject, view: &dyn ClusterView) -> Option<String> {
    if object.is_workload() {
        return match view.workload_active(&object.kind, &object.namespace, &object.name) {
            Some(false) => None,
            Some(true) => Some("asks for pods".to_owned()),
            None => Some("may ask for pods, Defender cannot tell yet".to_owned()),
        };
    }
    match object.uid.as_deref().map_or(0, |uid| view.dependents(uid)) {
        0 => None,
        1 => Some("1 running object names it as its owner".to_owned()),
        count => Some(format!("{count} running objects name it as their owner")),
    }
}

/// The violation of deleting `namespace` with what `lookup` found, for the
/// protection label `keys`: none when it holds no object that would refuse
/// its own deletion.
pub fn violation(
    namespace: &str,
    keys: &[&str],
    lookup: Lookup,
    view: &dyn ClusterView,
) -> Option<Violation> {
    let found = match lookup {
        Ok(found) => found,
        Err(reason) => return Some(not_looked_up(namespace, keys, &reason)),
    };
    let held: Vec<Held> = found.objects.iter().filter_map(|object| held(object, keys, view)).collect();
    if held.is_empty() {
        // Unlisted objects may hold it: judging only the first ones would let them go.
        return found.at_least.then(|| {
            let reason = format!(
                "it holds more than {PAGE_SIZE} labelled objects of one type, and Defender judged only the first \
                 {PAGE_SIZE}"
            );
            not_looked_up(namespace, keys, &reason)
        });
    }
    Some(held_violation(namespace, keys, &held, &found))
}

fn held_violation(namespace: &str, keys: &[&str], held: &[Held], found: &Found) -> Violation {
    let total = held.len();
    let at_least = if found.at_least { "at least " } else { "" };
    let objects = if total == 1 { "object" } else { "objects" };
    let named = &held[..total.min(MAX_NAMED)];
    let first_labels = &held[0].labels;
    let one_label = held.iter().all(|h| h.labels == *first_labels) && first_labels.len() == 1;
    let by = if one_label {
        let (key, value) = first_labels[0];
        format!("by label {key}={value}")
    } else {
        "by label".to_owned()
    };
    let mut listed: Vec<String> = named.iter().map(|h| h.describe(!one_label)).collect();
    if total > named.len() {
        listed.push(format!("and {} more", total - named.len()));
    }
    let cascading = held.iter().any(|h| h.takes.is_some());
    let why = match (held.iter().any(|h| h.takes.is_none()), cascading) {
        (true, false) => "a label other than Cascading protects an object until it is removed",
        (false, _) => {
            "Cascading protects an object while deleting it would delete its pods or running dependents"
        }
        (true, true) => {
            "a label other than Cascading protects an object until it is removed, Cascading while deleting it \
             would delete its pods or running dependents"
        }
    };
    let reason = format!(
        "namespace {namespace:?} holds {at_least}{total} {objects} protected against deletion {by} ({}), and \
         deleting it would delete them: {why}",
        listed.join(", ")
    );
    Violation::new(reason, remedy(namespace, keys, held, named, found.at_least, cascading))
}

fn remedy(
    namespace: &str,
    keys: &[&str],
    held: &[Held],
    named: &[Held],
    at_least: bool,
    cascading: bool,
) -> String {
    let unlabel: Vec<String> = named
        .iter()
        .map(|h| {
            let removals: Vec<String> = h.labels.iter().map(|(key, _)| format!("{key}-")).collect();
            format!(
                "kubectl label {} {} -n {namespace} {}",
                h.object.kubectl_resource(),
                h.object.name,
                removals.join(" ")
            )
        })
        .collect();
    let mut remedy = format!(
        "If they may go with it, remove their label first ({}), then delete the namespace; or delete them one by \
         one after removing their label",
        unlabel.join("; ")
    );
    if cascading {
        let scale: Vec<String> = named
            .iter()
            .filter(|h| h.takes.is_some() && h.object.is_workload() && h.object.kind != "DaemonSet")
            .map(|h| {
                let kind = h.object.kind.to_lowercase();
                format!("kubectl scale {kind} {} -n {namespace} --replicas=0", h.object.name)
            })
            .collect();
        let scale = if scale.is_empty() { String::new() } else { format!(" ({})", scale.join("; ")) };
        remedy.push_str(&format!(
            ". Objects labelled Cascading hold it only while they run something: scale them to zero or stop what \
             they own first{scale}"
        ));
    }
    if held.len() > named.len() || at_least {
        let resources: BTreeSet<String> = held.iter().map(|h| h.object.kubectl_resource()).collect();
        let resources = resources.into_iter().collect::<Vec<_>>().join(",");
        let listings: Vec<String> =
            keys.iter().map(|key| format!("kubectl get {resources} -n {namespace} -l {key}")).collect();
        remedy.push_str(&format!(". The others are listed by: {}", listings.join("; ")));
    }
    remedy
}

/// Refused when the objects could not all be looked up: the namespace may
/// hold some.
fn not_looked_up(namespace: &str, keys: &[&str], reason: &str) -> Violation {
    let labels: Vec<String> = keys.iter().map(|key| format!("{key}=Always")).collect();
    let listings: Vec<String> = keys
        .iter()
        .map(|key| format!("kubectl get all,secrets,configmaps -n {namespace} -l {key}"))
        .collect();
    Violation::new(
        format!(
            "namespace {namespace:?} may hold objects protected against deletion by label {} (or Cascading, \
             while they run something), and deleting it would delete them: Defender could not look for them \
             ({reason})",
            labels.join(" or ")
        ),
        format!(
            "Nothing was deleted. Check what it holds (for the common kinds: {}) and try again",
            listings.join("; ")
        ),
    )
}
