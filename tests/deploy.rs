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

fn webhooks() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/validatingwebhookconfiguration.yaml");
    let configuration: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    configuration["webhooks"].as_sequence().unwrap().clone()
}

/// The quoted names in a CEL expression: `'system:kube-scheduler'`.
fn quoted(expression: &str) -> Vec<&str> {
    expression.split('\'').skip(1).step_by(2).collect()
}

#[test]
fn every_webhook_skips_exactly_the_control_plane_identities_the_settings_exempt() {
    let settings = defender::settings::Settings::default();
    let mut expected: Vec<&str> = settings.exempt_users.iter().map(String::as_str).collect();
    expected.extend(settings.exempt_groups.iter().map(String::as_str));
    expected.sort();
    for webhook in webhooks() {
        let conditions = webhook["matchConditions"].as_sequence().unwrap();
        let skipping: Vec<&str> = conditions
            .iter()
            .filter_map(|c| c["expression"].as_str())
            .filter(|e| e.contains("request.userInfo.username"))
            .collect();
        assert_eq!(
            skipping.len(),
            1,
            "{}: one condition names the control plane",
            webhook["name"].as_str().unwrap()
        );
        let node_prefix = defender::settings::NODE_USER_PREFIX;
        assert!(
            skipping[0].contains(&format!("startsWith('{node_prefix}')")),
            "nodes are users named {node_prefix}*"
        );
        let mut named: Vec<&str> = quoted(skipping[0])
            .into_iter()
            .filter(|q| q.starts_with("system:") && *q != node_prefix)
            .collect();
        named.sort();
        assert_eq!(named, expected, "{}", webhook["name"].as_str().unwrap());
    }
}

#[test]
fn owner_reference_updates_of_guarded_kinds_are_routed() {
    for webhook in webhooks() {
        let name = webhook["name"].as_str().unwrap();
        if !matches!(
            name,
            "deletions.defender.io" | "pod-deletions.defender.io" | "delete-protection.defender.io"
        ) {
            continue;
        }
        let rules = webhook["rules"].as_sequence().unwrap();
        for rule in rules {
            let operations = rule["operations"].as_sequence().unwrap();
            assert!(operations.contains(&Value::from("UPDATE")), "{name}: {rule:?}");
        }
        let conditions = webhook["matchConditions"].as_sequence().unwrap();
        assert!(
            conditions.iter().any(|c| c["expression"].as_str().unwrap().contains("ownerReferences")),
            "{name}: only owner-reference updates leave the API server"
        );
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The repository image/build.sh tags the image with (`REPOSITORY=...`).
fn built_repository() -> String {
    let script = read("image/build.sh");
    let line = script.lines().find_map(|line| line.strip_prefix("REPOSITORY="));
    line.expect("image/build.sh sets REPOSITORY").to_owned()
}

#[test]
fn deploy_names_the_image_the_build_script_makes_at_the_crate_version() {
    let repository = built_repository();
    let version = env!("CARGO_PKG_VERSION");

    let kustomization: Value = serde_yaml_ng::from_str(&read("deploy/base/kustomization.yaml")).unwrap();
    let images = kustomization["images"].as_sequence().unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["name"].as_str(), Some(repository.as_str()), "{images:?}");
    assert_eq!(images[0]["newTag"].as_str(), Some(version), "newTag is Cargo.toml's version");
    assert!(images[0]["newName"].is_null(), "{images:?}");

    let deployment = deployment();
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence().unwrap();
    for container in containers {
        assert_eq!(container["image"].as_str(), Some(format!("{repository}:{version}").as_str()));
        assert_eq!(container["command"][0].as_str(), Some("/defender"), "the image's binary");
    }
}

#[test]
fn the_dockerfile_labels_repeat_cargo_toml() {
    let dockerfile = read("Dockerfile");
    let mut labels: Vec<(&str, &str)> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("LABEL "))
        .map(|label| {
            let (key, value) = label.split_once('=').expect("LABEL key=\"value\"");
            (key, value.trim_matches('"'))
        })
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("org.opencontainers.image.licenses", env!("CARGO_PKG_LICENSE")),
            ("org.opencontainers.image.source", env!("CARGO_PKG_REPOSITORY")),
            ("org.opencontainers.image.title", env!("CARGO_PKG_NAME")),
            ("org.opencontainers.image.version", env!("CARGO_PKG_VERSION")),
        ]
    );
    assert!(dockerfile.contains("\nUSER 65532:65532\n"), "deploy/base/deployment.yaml's user");
    assert!(dockerfile.contains("\nEXPOSE 8443\n"));
    assert!(dockerfile.contains("\nENTRYPOINT [\"/defender\"]\n"));
}
