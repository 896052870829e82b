//! in-use-guard: deleting what others still use.
//!
//! A Secret or ConfigMap a live Pod refers to (env, envFrom, volumes,
//! projected volumes, imagePullSecrets), a Secret an Ingress serves TLS with,
//! a Service an Ingress routes to: deleting them breaks their users, often
//! only later, when a pod restarts. This policy names up to five users. Who
//! uses what comes from the cluster view.

use serde::Deserialize;

use crate::policy::{Action, Context, Rule, Spec, Verdict, Violation};
use crate::request::Request;
use crate::routing::{self, Hook, Need};
use crate::selector::Label;
use crate::view::{Referent, Referrer, ReferrerKind, Via};

/// How many users a message names; the rest are counted.
const NAMED: usize = 5;

/// An `InUseGuard` document's `spec`, which is also its rule: judging needs nothing more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InUseGuardSpec {
    /// The kinds guarded: any of Secret, ConfigMap, Service.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<GuardedKind>,
    /// On the object, says "delete it anyway": the finding is not reported.
    /// `null` turns the exemption off.
    #[serde(default = "default_exempt_label")]
    pub exempt_label: Option<Label>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum GuardedKind {
    Secret,
    ConfigMap,
    Service,
}

impl GuardedKind {
    fn referent(self) -> Referent {
        match self {
            GuardedKind::Secret => Referent::Secret,
            GuardedKind::ConfigMap => Referent::ConfigMap,
            GuardedKind::Service => Referent::Service,
        }
    }
}

fn default_kinds() -> Vec<GuardedKind> {
    vec![GuardedKind::Secret, GuardedKind::ConfigMap, GuardedKind::Service]
}

fn default_exempt_label() -> Option<Label> {
    Some(Label { key: "defender.io/deletion-allowed".to_owned(), value: "true".to_owned() })
}

impl Default for InUseGuardSpec {
    fn default() -> Self {
        Self { kinds: default_kinds(), exempt_label: default_exempt_label() }
    }
}

impl InUseGuardSpec {
    fn guarded(&self, request: &Request) -> Option<Referent> {
        self.kinds.iter().map(|kind| kind.referent()).find(|referent| request.is_kind("", referent.kind()))
    }

    fn remedy(&self, request: &Request) -> String {
        let stop = "Stop using it first (update or delete those)";
        match &self.exempt_label {
            Some(label) => {
                let kind = request.kind().to_lowercase();
                let namespace = request.namespace().unwrap_or("default");
                format!(
                    "{stop}, or to delete it anyway, label it: kubectl label {kind} {} -n {namespace} {label}",
                    request.name()
                )
            }
            None => stop.to_owned(),
        }
    }
}

/// `pod prod/api-7d9 (envFrom), ingress prod/web (tls) and 3 more`
fn name_users(users: &[Referrer]) -> String {
    let named: Vec<String> = users.iter().take(NAMED).map(Referrer::to_string).collect();
    match users.len().saturating_sub(NAMED) {
        0 => named.join(", "),
        more => format!("{} and {more} more", named.join(", ")),
    }
}

/// What breaks once it is gone, for the kinds of users it has.
fn consequences(users: &[Referrer]) -> String {
    let mut what = Vec::new();
    if users.iter().any(|user| user.kind == ReferrerKind::Pod) {
        what.push("pods that refer to it fail to start or restart");
    }
    let ingress_uses = |wanted: &[Via]| {
        users
            .iter()
            .any(|user| user.kind == ReferrerKind::Ingress && user.via.iter().any(|via| wanted.contains(via)))
    };
    if ingress_uses(&[Via::Tls]) {
        what.push("ingresses lose their TLS certificate");
    }
    if ingress_uses(&[Via::Backend, Via::DefaultBackend]) {
        what.push("requests the ingresses route to it fail");
    }
    if what.is_empty() {
        // Only ingresses the view knows in part, which may use it in a way it cannot tell.
        what.push("the ingresses may lose what they take from it");
    }
    what.join(" and ")
}

impl Spec for InUseGuardSpec {
    type Rule = Self;
    const DEFAULT_ACTION: Action = Action::Warn;
    const READS: &[&str] = &["metadata.name", "metadata.labels"];

    fn into_rule(self) -> Result<Self, String> {
        if self.kinds.is_empty() {
            return Err("kinds: list at least one of Secret, ConfigMap, Service".to_owned());
        }
        Ok(self)
    }
}

impl Rule for InUseGuardSpec {
    fn routes(&self) -> Vec<Need> {
        let resource = |kind: GuardedKind| match kind {
            GuardedKind::Secret => routing::kinds::resource("", "Secret", None),
            GuardedKind::ConfigMap => routing::kinds::resource("", "ConfigMap", None),
            GuardedKind::Service => routing::kinds::resource("", "Service", None),
        };
        self.kinds.iter().flat_map(|kind| Need::deletions(Hook::Deletions, &resource(*kind))).collect()
    }

    fn applies(&self, request: &Request) -> bool {
        request.is_delete() && request.sub_resource().is_none() && self.guarded(request).is_some()
    }

    fn evaluate(&self, request: &Request, context: &Context) -> Verdict {
        let (Some(referent), Some(namespace), name) =
            (self.guarded(request), request.namespace(), request.name())
        else {
            return Verdict::Pass;
        };
        if name.is_empty() || self.exempt_label.as_ref().is_some_and(|label| label.is_on(request.labels())) {
            return Verdict::Pass;
        }
        let users = context.view.users(referent, namespace, name);
        if users.is_empty() {
            return Verdict::Pass;
        }
        Verdict::Violation(Violation::new(
            format!(
                "{} is in use by {}; without it, {}",
                request.describe(),
                name_users(&users),
                consequences(&users)
            ),
            self.remedy(request),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, assert_contains, object};
    use serde_json::{Value, json};

    fn policy() -> InUseGuardSpec {
        InUseGuardSpec::default().into_rule().unwrap()
    }

    fn pod(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "prod"}, "spec": spec})
    }

    fn ingress(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": name, "namespace": "prod"}, "spec": spec})
    }

    #[test]
    fn a_secret_used_by_a_pod_and_an_ingress_names_both_and_how() {
        let fixture = Fixture::new().with_objects(&[
            pod(
                "api-7d9",
                json!({"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "db"}}]}]}),
            ),
            ingress("web", json!({"tls": [{"hosts": ["web.example.com"], "secretName": "db"}]})),
            pod(
                "other",
                json!({"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "other"}}]}]}),
            ),
        ]);
        let violation =
            fixture.violation(&policy(), &fixture.delete(object("v1", "Secret", "prod", "db", &[])));
        assert_eq!(
            violation.reason,
            "secret \"prod/db\" is in use by pod prod/api-7d9 (envFrom), ingress prod/web (tls); without it, \
             pods that refer to it fail to start or restart and ingresses lose their TLS certificate"
        );
        assert_eq!(
            violation.remedy,
            "Stop using it first (update or delete those), or to delete it anyway, label it: \
             kubectl label secret db -n prod defender.io/deletion-allowed=true"
        );
    }

    #[test]
    fn every_way_a_pod_refers_to_secrets_and_configmaps_counts_in_every_container_kind() {
        let spec = json!({
            "initContainers": [{"name": "init", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}}]}],
            "containers": [{"name": "app",
                "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c-env", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c-envfrom"}}]}],
            "ephemeralContainers": [{"name": "debug", "envFrom": [{"secretRef": {"name": "s-ephemeral"}}]}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "s-volume"}},
                {"name": "b", "configMap": {"name": "c-volume"}},
                {"name": "c", "projected": {"sources": [{"secret": {"name": "s-projected"}}, {"configMap": {"name": "c-projected"}}]}}
            ],
            "imagePullSecrets": [{"name": "s-pull"}]
        });
        let fixture = Fixture::new().with_objects(&[pod("api", spec)]);
        let cases = [
            ("Secret", "s-env", "env"),
            ("Secret", "s-ephemeral", "envFrom"),
            ("Secret", "s-volume", "volume"),
            ("Secret", "s-projected", "projected volume"),
            ("Secret", "s-pull", "imagePullSecrets"),
            ("ConfigMap", "c-env", "env"),
            ("ConfigMap", "c-envfrom", "envFrom"),
            ("ConfigMap", "c-volume", "volume"),
            ("ConfigMap", "c-projected", "projected volume"),
        ];
        for (kind, name, via) in cases {
            let request = fixture.delete(object("v1", kind, "prod", name, &[]));
            let violation = fixture.violation(&policy(), &request);
            assert_contains(&violation.reason, &format!("in use by pod prod/api ({via})"));
        }
    }

    #[test]
    fn a_service_an_ingress_routes_to_names_the_ingress() {
        let fixture = Fixture::new().with_objects(&[
            ingress("web", json!({"rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]})),
            ingress("fallback", json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}})),
        ]);
        let violation =
            fixture.violation(&policy(), &fixture.delete(object("v1", "Service", "prod", "web", &[])));
        assert_contains(
            &violation.reason,
            "in use by ingress prod/fallback (defaultBackend), ingress prod/web (backend); without it, \
             requests the ingresses route to it fail",
        );
    }

    #[test]
    fn an_ingress_known_in_part_may_use_a_service_it_is_not_known_to_name() {
        let paths: Vec<Value> = (0..=crate::view::bounds::MAX_REFERENCES)
            .map(|i| {
                json!({"path": format!("/p{i}"), "pathType": "Prefix",
                       "backend": {"service": {"name": format!("svc-{i:04}"), "port": {"number": 80}}}})
            })
            .collect();
        let fixture = Fixture::new().with_objects(&[ingress(
            "big",
            json!({"rules": [{"host": "big.example.com", "http": {"paths": paths}}]}),
        )]);
        let violation =
            fixture.violation(&policy(), &fixture.delete(object("v1", "Service", "prod", "svc-0100", &[])));
        assert!(
            violation.reason.ends_with(
                "in use by ingress prod/big (perhaps: only its first 100 references are known to Defender); \
                 without it, the ingresses may lose what they take from it"
            ),
            "{}",
            violation.reason
        );
    }

    #[test]
    fn names_five_users_and_counts_the_rest() {
        let pods: Vec<Value> = (1..=8)
            .map(|i| {
                pod(
                    &format!("api-{i}"),
                    json!({"containers": [{"name": "a", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}),
                )
            })
            .collect();
        let fixture = Fixture::new().with_objects(&pods);
        let violation =
            fixture.violation(&policy(), &fixture.delete(object("v1", "ConfigMap", "prod", "cfg", &[])));
        assert_contains(&violation.reason, "pod prod/api-5 (envFrom) and 3 more;");
        assert!(!violation.reason.contains("api-6"));
    }

    #[test]
    fn unused_objects_finished_pods_other_namespaces_and_the_label_pass() {
        let mut finished =
            pod("done", json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "db"}}]}]}));
        finished["status"] = json!({"phase": "Succeeded"});
        let mut elsewhere =
            pod("api", json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "db"}}]}]}));
        elsewhere["metadata"]["namespace"] = json!("staging");
        let fixture = Fixture::new().with_objects(&[finished, elsewhere]);
        let context = fixture.context();
        let unused = fixture.delete(object("v1", "Secret", "prod", "db", &[]));
        assert!(matches!(policy().evaluate(&unused, &context), Verdict::Pass));

        let used = Fixture::new().with_objects(&[pod(
            "api",
            json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "db"}}]}]}),
        )]);
        let labelled =
            used.delete(object("v1", "Secret", "prod", "db", &[("defender.io/deletion-allowed", "true")]));
        assert!(matches!(policy().evaluate(&labelled, &used.context()), Verdict::Pass));
    }

    #[test]
    fn guards_only_the_configured_kinds_and_deletes() {
        let spec: InUseGuardSpec = serde_yaml_ng::from_str("kinds: [Service]").unwrap();
        let guard = spec.into_rule().unwrap();
        let fixture = Fixture::new();
        assert!(!guard.applies(&fixture.delete(object("v1", "Secret", "prod", "db", &[]))));
        assert!(guard.applies(&fixture.delete(object("v1", "Service", "prod", "web", &[]))));
        assert!(!policy().applies(&fixture.create(object("v1", "Secret", "prod", "db", &[]))));
        assert!(serde_yaml_ng::from_str::<InUseGuardSpec>("kinds: []").unwrap().into_rule().is_err());
        assert!(serde_yaml_ng::from_str::<InUseGuardSpec>("kinds: [Pod]").is_err());
    }
}
