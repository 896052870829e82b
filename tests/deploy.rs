//! deploy/ keeps the hardening docs/threat-model.md relies on: Defender runs
//! as a non-root user, on a read-only root filesystem, with no privileges to
//! gain. (tests/e2e applies these manifests to a real API server.)

use serde_yaml_ng::Value;

fn deployment() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/deployment.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_pod_runs_as_a_non_root_user_with_the_default_seccomp_profile() {
    let pod = &deployment()["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsNonRoot"], Value::Bool(true), "{pod:?}");
    assert!(pod["runAsUser"].as_u64().is_some_and(|uid| uid > 0), "{pod:?}");
    assert_eq!(pod["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"), "{pod:?}");
}

#[test]
fn every_container_has_a_read_only_root_and_no_privileges() {
    let deployment = deployment();
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence().unwrap();
    assert!(!containers.is_empty());
    for container in containers {
        let context = &container["securityContext"];
        assert_eq!(context["readOnlyRootFilesystem"], Value::Bool(true), "{container:?}");
        assert_eq!(context["allowPrivilegeEscalation"], Value::Bool(false), "{container:?}");
        assert_ne!(context["privileged"], Value::Bool(true), "{container:?}");
        let dropped = context["capabilities"]["drop"].as_sequence().cloned().unwrap_or_default();
        assert!(dropped.contains(&Value::from("ALL")), "{container:?}");
        assert!(context["capabilities"]["add"].is_null(), "{container:?}");
    }
}
