//! Rules that apply before any policy: who is never blocked, and who may break glass.
//!
//! Blocking the control plane is the classic webhook outage: the namespace
//! controller cannot empty a deleted namespace, which then hangs in Terminating.
//! These defaults keep Defender out of its way.

use serde::Deserialize;

use crate::request::Request;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Settings {
    /// Usernames never blocked; a trailing `*` matches any suffix.
    #[serde(default = "default_exempt_users")]
    pub exempt_users: Vec<String>,
    /// Groups never blocked.
    #[serde(default = "default_exempt_groups")]
    pub exempt_groups: Vec<String>,
    /// Groups allowed through every policy, with a warning and an audit line.
    #[serde(default = "default_break_glass_groups")]
    pub break_glass_groups: Vec<String>,
    /// Let DELETEs of objects that already carry a deletionTimestamp through,
    /// and updates that only remove their finalizers.
    #[serde(default = "yes")]
    pub skip_objects_being_deleted: bool,
    /// Let DELETEs inside a namespace that is itself being deleted through.
    #[serde(default = "yes")]
    pub allow_in_terminating_namespaces: bool,
}

/// The garbage collector's identity: it deletes what lost its owners.
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// The control plane's own identities, and why each must pass. Only the
/// controllers that delete (or adopt, by owner reference) the kinds Defender
/// judges: add-ons that also run in kube-system are judged like anyone.
/// deploy/'s matchConditions name the same users (a test keeps them in step).
pub const CONTROL_PLANE_USERS: &[(&str, &str)] = &[
    ("system:serviceaccount:kube-system:namespace-controller", "empties and finalizes deleted namespaces"),
    (GARBAGE_COLLECTOR, "deletes dependents whose owners are gone, and orphans them"),
    ("system:serviceaccount:kube-system:replicaset-controller", "creates, adopts and deletes its pods"),
    ("system:serviceaccount:kube-system:replication-controller", "creates, adopts and deletes its pods"),
    ("system:serviceaccount:kube-system:statefulset-controller", "creates, adopts and deletes its pods"),
    ("system:serviceaccount:kube-system:daemon-set-controller", "creates, adopts and deletes its pods"),
    ("system:serviceaccount:kube-system:job-controller", "creates, adopts and deletes its pods"),
    ("system:serviceaccount:kube-system:cronjob-controller", "deletes the pods of jobs it replaces"),
    ("system:serviceaccount:kube-system:node-controller", "evicts pods from lost or tainted nodes"),
    (
        "system:serviceaccount:kube-system:device-taint-eviction-controller",
        "evicts pods from tainted devices",
    ),
    ("system:serviceaccount:kube-system:pod-garbage-collector", "deletes finished and orphaned pods"),
    ("system:serviceaccount:kube-system:persistent-volume-binder", "deletes its volume recycler pods"),
    (
        "system:serviceaccount:kube-system:legacy-service-account-token-cleaner",
        "deletes unused legacy service account token Secrets",
    ),
    ("system:serviceaccount:kube-system:token-cleaner", "deletes expired bootstrap token Secrets"),
    ("system:kube-controller-manager", "all of the above, when controllers share one identity"),
    ("system:kube-scheduler", "deletes pods it preempts"),
];

/// Kubelets authenticate as `system:node:<node name>` in group
/// `system:nodes`; a user who only claims the group is judged.
pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";

/// Kubelets delete the pods of their node.
pub const CONTROL_PLANE_GROUPS: &[&str] = &[NODES_GROUP];

fn default_exempt_users() -> Vec<String> {
    CONTROL_PLANE_USERS.iter().map(|(user, _)| (*user).to_owned()).collect()
}

fn default_exempt_groups() -> Vec<String> {
    CONTROL_PLANE_GROUPS.iter().map(|group| (*group).to_owned()).collect()
}

fn default_break_glass_groups() -> Vec<String> {
    vec!["defender:break-glass".to_owned()]
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            exempt_users: default_exempt_users(),
            exempt_groups: default_exempt_groups(),
            break_glass_groups: default_break_glass_groups(),
            skip_objects_being_deleted: true,
            allow_in_terminating_namespaces: true,
        }
    }
}

/// Why a request was let through without consulting the policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    ExemptUser,
    ExemptGroup,
    BeingDeleted,
    FinishingTeardown,
    TerminatingNamespace,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::ExemptUser => "exempt-user",
            Skip::ExemptGroup => "exempt-group",
            Skip::BeingDeleted => "object-being-deleted",
            Skip::FinishingTeardown => "finalizers-removed",
            Skip::TerminatingNamespace => "namespace-terminating",
        }
    }
}

impl Settings {
    /// Checks what the loader cannot express in types.
    pub fn validate(&self) -> Result<(), String> {
        for (index, pattern) in self.exempt_users.iter().enumerate() {
            let star = pattern.find('*');
            if pattern.is_empty() || star.is_some_and(|at| at != pattern.len() - 1) {
                return Err(format!(
                    "exemptUsers[{index}]: {pattern:?} must be a username, or a prefix ending in a single '*'"
                ));
            }
        }
        Ok(())
    }

    /// Whether the request comes from the control plane.
    pub fn exempt_identity(&self, request: &Request) -> Option<Skip> {
        let username = request.username();
        if self.exempt_users.iter().any(|pattern| user_matches(pattern, username)) {
            return Some(Skip::ExemptUser);
        }
        let member = |group: &String| {
            self.exempt_groups.contains(group)
                && (group != NODES_GROUP || username.starts_with(NODE_USER_PREFIX))
        };
        if request.groups().iter().any(member) {
            return Some(Skip::ExemptGroup);
        }
        None
    }

    /// Whether the request finishes the deletion of an object already on its
    /// way out: deleting it again (graceful deletion retries), or removing
    /// its finalizers. Any other change to such an object is judged: a
    /// finalizer can keep it, and its namespace, around forever.
    /// Namespace termination is checked by the engine, which has the namespace view.
    pub fn teardown(&self, request: &Request) -> Option<Skip> {
        if !self.skip_objects_being_deleted || request.deletion_timestamp().is_none() {
            return None;
        }
        if request.is_delete() {
            Some(Skip::BeingDeleted)
        } else {
            request.only_removes_finalizers().then_some(Skip::FinishingTeardown)
        }
    }

    pub fn is_break_glass(&self, request: &Request) -> bool {
        request.groups().iter().any(|group| self.break_glass_groups.contains(group))
    }
}

fn user_matches(pattern: &str, username: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => username.starts_with(prefix),
        None => pattern == username,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_star_matches_a_prefix_only() {
        assert!(user_matches(
            "system:serviceaccount:kube-system:*",
            "system:serviceaccount:kube-system:namespace-controller"
        ));
        assert!(!Settings::default().exempt_users.iter().any(|user| user.contains('*')));
        assert!(!user_matches("system:serviceaccount:kube-system:*", "system:serviceaccount:prod:deployer"));
        assert!(user_matches("system:kube-scheduler", "system:kube-scheduler"));
        assert!(!user_matches("system:kube-scheduler", "system:kube-scheduler-evil"));
    }

    #[test]
    fn validate_rejects_a_star_in_the_middle() {
        let settings = Settings { exempt_users: vec!["system:*:admin".into()], ..Settings::default() };
        assert!(settings.validate().unwrap_err().contains("exemptUsers[0]"));
        assert!(Settings::default().validate().is_ok());
    }
}
