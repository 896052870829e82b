//! Reading only the parts must not change a summary: every fixture is
//! decoded both as k8s-openapi's whole object, summarized as the view did
//! before it read parts ([`whole`]), and as [`Parts`], summarized by
//! [`summary`]; the two must agree.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Parts;
use crate::view::http_route::HttpRoute;
use crate::view::summary::{self, HostPath};

/// The summaries as made from whole objects, field by field.
mod whole {
    use std::collections::BTreeSet;

    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, PersistentVolumeClaim, Pod, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::view::bounds::{self, MAX_NAME, MAX_REFERENCES};
    use crate::view::summary::{PodSummary, Reference, Referent, Via, VolumeClaimSummary, WorkloadSummary};

    fn add(into: &mut BTreeSet<Reference>, referent: Referent, name: &str, via: Via) {
        if !name.is_empty() {
            into.insert(Reference { referent, name: bounds::owned(name, MAX_NAME), via });
        }
    }

    fn owners(metadata: &ObjectMeta) -> Box<[Box<str>]> {
        let owners = metadata.owner_references.iter().flatten();
        owners
            .filter(|owner| owner.block_owner_deletion == Some(true) && !owner.uid.is_empty())
            .take(4)
            .map(|owner| bounds::text(&owner.uid, MAX_NAME).into())
            .collect()
    }

    pub fn pod(pod: &Pod) -> PodSummary {
        let phase = pod.status.as_ref().and_then(|status| status.phase.as_deref());
        let live =
            !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none();
        let mut references = BTreeSet::new();
        if let Some(spec) = &pod.spec {
            for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
                environment(container.env.as_deref(), container.env_from.as_deref(), &mut references);
            }
            for container in spec.ephemeral_containers.iter().flatten() {
                environment(container.env.as_deref(), container.env_from.as_deref(), &mut references);
            }
            for volume in spec.volumes.iter().flatten() {
                volume_references(volume, &mut references);
            }
            for secret in spec.image_pull_secrets.iter().flatten() {
                add(&mut references, Referent::Secret, &secret.name, Via::ImagePullSecrets);
            }
        }
        let (references, references_truncated) = bounds::first(references, MAX_REFERENCES);
        PodSummary { live, references, references_truncated, blocking_owners: owners(&pod.metadata) }
    }

    fn environment(
        env: Option<&[EnvVar]>,
        env_from: Option<&[EnvFromSource]>,
        into: &mut BTreeSet<Reference>,
    ) {
        for source in env.unwrap_or_default().iter().filter_map(|var| var.value_from.as_ref()) {
            if let Some(secret) = &source.secret_key_ref {
                add(into, Referent::Secret, &secret.name, Via::Env);
            }
            if let Some(config_map) = &source.config_map_key_ref {
                add(into, Referent::ConfigMap, &config_map.name, Via::Env);
            }
        }
        for source in env_from.unwrap_or_default() {
            if let Some(secret) = &source.secret_ref {
                add(into, Referent::Secret, &secret.name, Via::EnvFrom);
            }
            if let Some(config_map) = &source.config_map_ref {
                add(into, Referent::ConfigMap, &config_map.name, Via::EnvFrom);
            }
        }
    }

    fn volume_references(volume: &Volume, into: &mut BTreeSet<Reference>) {
        if let Some(name) = volume.secret.as_ref().and_then(|secret| secret.secret_name.as_deref()) {
            add(into, Referent::Secret, name, Via::Volume);
        }
        if let Some(config_map) = &volume.config_map {
            add(into, Referent::ConfigMap, &config_map.name, Via::Volume);
        }
        let sources = volume.projected.as_ref().and_then(|projected| projected.sources.as_deref());
        for source in sources.unwrap_or_default() {
            if let Some(secret) = &source.secret {
                add(into, Referent::Secret, &secret.name, Via::ProjectedVolume);
            }
            if let Some(config_map) = &source.config_map {
                add(into, Referent::ConfigMap, &config_map.name, Via::ProjectedVolume);
            }
        }
    }

    fn workload(active: bool, metadata: &ObjectMeta) -> WorkloadSummary {
        WorkloadSummary {
            active: active && metadata.deletion_timestamp.is_none(),
            blocking_owners: owners(metadata),
        }
    }

    pub fn deployment(deployment: &Deployment) -> WorkloadSummary {
        let replicas = deployment.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
        workload(replicas > 0, &deployment.metadata)
    }

    pub fn stateful_set(stateful_set: &StatefulSet) -> WorkloadSummary {
        let replicas = stateful_set.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
        workload(replicas > 0, &stateful_set.metadata)
    }

    pub fn replica_set(replica_set: &ReplicaSet) -> WorkloadSummary {
        let owners = replica_set.metadata.owner_references.iter().flatten();
        let owned = owners.clone().any(|owner| owner.controller == Some(true) && owner.kind == "Deployment");
        let replicas = replica_set.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
        workload(replicas > 0 && !owned, &replica_set.metadata)
    }

    pub fn daemon_set(daemon_set: &DaemonSet) -> WorkloadSummary {
        let status = daemon_set.status.as_ref();
        let scheduled =
            status.map(|status| status.current_number_scheduled.max(status.desired_number_scheduled));
        workload(scheduled.unwrap_or(0) > 0, &daemon_set.metadata)
    }

    pub fn persistent_volume_claim(claim: &PersistentVolumeClaim) -> VolumeClaimSummary {
        let phase = claim.status.as_ref().and_then(|status| status.phase.as_deref());
        VolumeClaimSummary { bound: phase == Some("Bound") && claim.metadata.deletion_timestamp.is_none() }
    }
}

fn parse<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|error| panic!("{error}: {value}"))
}

/// What every object carries and no summary reads.
fn metadata(name: &str, extra: Value) -> Value {
    let mut metadata = json!({
        "name": name, "namespace": "shop", "uid": format!("{name}-uid"), "resourceVersion": "4711",
        "generation": 3, "creationTimestamp": "2026-11-30T10:00:00Z",
        "labels": {"app.kubernetes.io/name": "shop", "pod-template-hash": "7d9c8f"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}"},
        "finalizers": ["example.com/cleanup"],
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
            "time": "2026-11-30T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {}}}}]
    });
    metadata.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    metadata
}

fn owned_by(kind: &str, name: &str, block: Value) -> Value {
    json!({"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("{name}-uid"),
         "controller": true, "blockOwnerDeletion": block},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "anchor", "uid": "anchor-uid", "blockOwnerDeletion": true}]})
}

const LEAVING: &str = "2026-12-01T00:00:00Z";

fn pods() -> Vec<Value> {
    let full_spec = json!({
        "initContainers": [{"name": "migrate", "image": "shop/migrate:1.2",
            "env": [{"name": "DB_HOST", "valueFrom": {"configMapKeyRef": {"name": "db-config", "key": "host"}}}]}],
        "containers": [
            {"name": "app", "image": "shop/app:1.2", "command": ["/app"], "args": ["--port=8080"],
             "ports": [{"containerPort": 8080, "protocol": "TCP"}],
             "env": [
                {"name": "PLAIN", "value": "x"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode", "optional": true}}}],
             "envFrom": [{"configMapRef": {"name": "app-config"}}, {"prefix": "DB_", "secretRef": {"name": "db"}}],
             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
             "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
             "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": true}],
             "securityContext": {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}},
            {"name": "proxy", "image": "envoy:1.30",
             "envFrom": [{"secretRef": {"name": "proxy-token", "optional": true}}]}],
        "ephemeralContainers": [{"name": "debugger", "image": "busybox",
            "envFrom": [{"secretRef": {"name": "debug-token"}}],
            "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "debug-config", "key": "k"}}}]}],
        "volumes": [
            {"name": "tls", "secret": {"secretName": "shop-tls", "defaultMode": 420}},
            {"name": "config", "configMap": {"name": "app-config", "items": [{"key": "a", "path": "a"}]}},
            {"name": "bundle", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"secret": {"name": "bundle-secret"}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "cache", "ephemeral": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}],
        "imagePullSecrets": [{"name": "registry"}, {"name": "db"}],
        "serviceAccountName": "shop", "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app": "shop"}}}}]}}
    });
    let status = |phase: &str| {
        json!({"phase": phase, "podIP": "10.0.0.7", "qosClass": "Burstable",
               "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-30T10:00:05Z"}],
               "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "shop/app:1.2",
                   "imageID": "sha256:abc", "state": {"running": {"startedAt": "2026-11-30T10:00:04Z"}}}]})
    };
    let mut pods = Vec::new();
    for phase in ["Running", "Pending", "Unknown", "Succeeded", "Failed"] {
        pods.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": metadata("api", owned_by("ReplicaSet", "api-7d9", json!(true))),
            "spec": full_spec, "status": status(phase)}));
    }
    pods.push(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": metadata("leaving", json!({"deletionTimestamp": LEAVING, "deletionGracePeriodSeconds": 30})),
        "spec": full_spec, "status": status("Running")}));
    // Names left out or null, lists null, references to nothing.
    pods.push(json!({"metadata": {"name": "sparse", "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "", "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "a", "env": null, "envFrom": [{"secretRef": {}}, {"configMapRef": {"name": null}}]},
                                {"name": "b", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"key": "k"}}}]}],
                 "initContainers": null,
                 "volumes": [{"name": "s", "secret": {}}, {"name": "c", "configMap": {}},
                             {"name": "p", "projected": {"sources": null}}, {"name": "q", "projected": {}}],
                 "imagePullSecrets": [{}, {"name": ""}]}}));
    pods.push(json!({"metadata": {"name": "bare"}}));
    pods.push(json!({"metadata": null, "spec": null, "status": null}));
    pods.push(json!({"metadata": {"name": "no-status"}, "spec": {"containers": []}, "status": {}}));
    pods
}

#[test]
fn pods_summarize_alike_from_their_parts_and_whole() {
    for pod in pods() {
        assert_eq!(summary::pod(&parse::<Parts<Pod>>(&pod)), whole::pod(&parse(&pod)), "{pod}");
    }
    let api = summary::pod(&parse::<Parts<Pod>>(&pods()[0]));
    assert_eq!(api.references.len(), 14, "the fixture names every kind of reference: {:?}", api.references);
    assert_eq!(&api.blocking_owners[..], [Box::from("api-7d9-uid"), Box::from("anchor-uid")]);
}

fn workloads(kind: &str, spec: Value, status: Value) -> Vec<Value> {
    let mut workloads = Vec::new();
    for (name, extra) in [
        ("web", json!({})),
        ("owned", owned_by("Deployment", "web", json!(true))),
        ("loosely-owned", owned_by("Deployment", "web", json!(null))),
        ("other-owner", owned_by("Rollout", "canary", json!(false))),
        ("leaving", json!({"deletionTimestamp": LEAVING})),
    ] {
        workloads.push(json!({"apiVersion": "apps/v1", "kind": kind, "metadata": metadata(name, extra),
                              "spec": spec, "status": status}));
    }
    workloads.push(json!({"metadata": {"name": "bare"}}));
    workloads
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "nginx",
               "envFrom": [{"secretRef": {"name": "db"}}]}]}})
}

fn scaled(replicas: Value) -> Value {
    json!({"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template(),
           "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]})
}

#[test]
fn workloads_summarize_alike_from_their_parts_and_whole() {
    let status = json!({"replicas": 3, "readyReplicas": 3, "observedGeneration": 3,
        "conditions": [{"type": "Available", "status": "True"}]});
    for replicas in [json!(3), json!(0), json!(null)] {
        for deployment in workloads("Deployment", scaled(replicas.clone()), status.clone()) {
            let parts = summary::deployment(&parse::<Parts<Deployment>>(&deployment));
            assert_eq!(parts, whole::deployment(&parse(&deployment)), "{deployment}");
        }
        for set in workloads("StatefulSet", scaled(replicas.clone()), status.clone()) {
            let parts = summary::stateful_set(&parse::<Parts<StatefulSet>>(&set));
            assert_eq!(parts, whole::stateful_set(&parse(&set)), "{set}");
        }
        for set in workloads("ReplicaSet", scaled(replicas.clone()), status.clone()) {
            let parts = summary::replica_set(&parse::<Parts<ReplicaSet>>(&set));
            assert_eq!(parts, whole::replica_set(&parse(&set)), "{set}");
        }
    }
    let spec = json!({"selector": {"matchLabels": {"app": "agent"}}, "template": template()});
    for (current, desired) in [(0, 0), (0, 3), (2, 0), (2, 2)] {
        let status = json!({"currentNumberScheduled": current, "desiredNumberScheduled": desired,
                            "numberMisscheduled": 0, "numberReady": current});
        for set in workloads("DaemonSet", spec.clone(), status) {
            let parts = summary::daemon_set(&parse::<Parts<DaemonSet>>(&set));
            assert_eq!(parts, whole::daemon_set(&parse(&set)), "{set}");
        }
    }
    let partial = json!({"metadata": {"name": "a"}, "status": {"desiredNumberScheduled": 1}});
    assert!(summary::daemon_set(&parse::<Parts<DaemonSet>>(&partial)).active);
    assert_eq!(summary::daemon_set(&parse(&partial)), whole::daemon_set(&parse(&partial)));
}

#[test]
fn claims_summarize_alike_from_their_parts_and_whole() {
    for phase in [json!("Bound"), json!("Pending"), json!("Lost"), json!(null)] {
        for extra in [json!({}), json!({"deletionTimestamp": LEAVING})] {
            let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata("data", extra),
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                         "storageClassName": "standard", "volumeName": "pv-1"},
                "status": {"phase": phase, "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
            let parts = summary::persistent_volume_claim(&parse::<Parts<PersistentVolumeClaim>>(&claim));
            assert_eq!(parts, whole::persistent_volume_claim(&parse(&claim)), "{claim}");
        }
    }
}

#[test]
fn ingresses_summarize_alike_from_their_parts_and_whole() {
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": metadata("web", json!({"annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}})),
        "spec": {"ingressClassName": "nginx",
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
            "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
            "rules": [{"host": "Shop.Example.com", "http": {"paths": [
                {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
                {"path": "/static", "pathType": "Exact",
                 "backend": {"resource": {"apiGroup": "example.com", "kind": "Bucket", "name": "static"}}}]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ports": [{"port": 443, "protocol": "TCP"}]}]}}});
    let whole: Ingress = parse(&ingress);
    let from_whole = Parts { metadata: whole.metadata, spec: whole.spec, status: None };
    let parts: Parts<Ingress> = parse(&ingress);
    assert_eq!(summary::ingress(&parts), summary::ingress(&from_whole));
    let routes: Vec<String> = summary::ingress(&parts).routes.iter().map(HostPath::to_string).collect();
    assert_eq!(routes, ["shop.example.com/api", "shop.example.com/static"]);
    assert_eq!(summary::ingress(&parts).references.len(), 3);
}

#[test]
fn an_http_route_is_read_in_its_parts_whatever_else_it_holds() {
    let route: HttpRoute = parse(&json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": metadata("web", json!({})),
        "spec": {"parentRefs": [{"name": "gateway", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["shop.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                                    "headers": [{"name": "x-canary", "value": "true"}], "method": "GET"}],
                       "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "y"}]}}],
                       "backendRefs": [{"name": "api", "port": 8080, "weight": 90}]}]},
        "status": {"parents": [{"parentRef": {"name": "gateway"}, "controllerName": "example.com/gateway",
            "conditions": [{"type": "Accepted", "status": "True"}]}]}}));
    let routes: Vec<String> = summary::http_route(&route).routes.iter().map(HostPath::to_string).collect();
    assert_eq!(routes, ["shop.example.com/api"]);
    assert_eq!(route.metadata.name.as_deref(), Some("web"));
    assert_eq!(route.metadata.labels, None, "labels are not read");
}

#[test]
fn the_metadata_kept_is_what_a_watch_and_the_view_need() {
    let pod: Parts<Pod> = parse(&pods()[5]);
    let kept = &pod.metadata;
    assert_eq!(
        (
            kept.name.as_deref(),
            kept.namespace.as_deref(),
            kept.uid.as_deref(),
            kept.resource_version.as_deref()
        ),
        (Some("leaving"), Some("shop"), Some("leaving-uid"), Some("4711"))
    );
    assert!(kept.deletion_timestamp.is_some());
    assert_eq!((&kept.labels, &kept.annotations, &kept.managed_fields), (&None, &None, &None));
}
