//! charts/defender against a real API server: it renders what deploy/
//! renders, the API server accepts it, its webhooks (pointed at the Defender
//! under test) are the ones that deny, and its generated certificate
//! survives upgrades until it is renewed on purpose.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::World;
use crate::env::{self, Check, Kubectl};

#[path = "../support/helm.rs"]
mod helm;

/// `helm template` output as JSON objects.
fn objects(rendered: &str) -> Vec<Value> {
    helm::objects(rendered).into_iter().map(|o| serde_json::to_value(o).expect("YAML is JSON")).collect()
}

/// What two renders must agree on: everything but labels (Helm's own, the
/// chart version) and comments, which parsing drops, and the line breaks in
/// CEL expressions, which mean nothing to CEL (kustomize re-emits the folded
/// `>-` expressions as literal blocks with blank lines added).
fn comparable(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("labels");
    }
    single_spaced_expressions(&mut object);
    object
}

fn single_spaced_expressions(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                match field {
                    Value::String(text) if name == "expression" => {
                        *text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    }
                    _ => single_spaced_expressions(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(single_spaced_expressions),
        _ => {}
    }
}

fn key(object: &Value) -> String {
    format!(
        "{} {}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

pub fn renders_what_deploy_renders(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let overlay = world.repo.join("deploy/overlays/cert-manager");
    let kustomized = objects(&k.ok(&["kustomize", &overlay.display().to_string()])?);
    let charted = objects(&helm::template(&[
        "--set",
        "certificates.source=certManager",
        "--set",
        "createNamespace=true",
    ])?);
    let mut differences = Vec::new();
    for expected in &kustomized {
        match charted.iter().find(|o| key(o) == key(expected)) {
            None => differences.push(format!("{}: not in the chart", key(expected))),
            Some(rendered) if comparable(rendered.clone()) != comparable(expected.clone()) => differences
                .push(format!(
                    "{}:\n  kustomize: {}\n  helm:      {}",
                    key(expected),
                    comparable(expected.clone()),
                    comparable(rendered.clone())
                )),
            Some(_) => {}
        }
    }
    for rendered in &charted {
        if !kustomized.iter().any(|o| key(o) == key(rendered)) {
            differences.push(format!("{}: only in the chart", key(rendered)));
        }
    }
    if differences.is_empty() { Ok(()) } else { Err(differences.join("\n")) }
}

pub fn passes_apply_dry_run(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    // The namespace a `helm install -n defender-system --create-namespace` makes.
    k.ok(&["apply", "-f", &world.repo.join("deploy/base/namespace.yaml").display().to_string()])?;
    let variants: [&[&str]; 3] = [
        &[],
        &["--set", "clientCA.secretName=api-server-ca", "--set", "replicas=3"],
        &[
            "--set-string",
            "policies.files.extra\\.yaml=apiVersion: defender.io/v1alpha1\nkind: CoreNamespaces\nmetadata: {name: more-core}\nspec: {namespaces: [platform]}\n",
        ],
    ];
    for values in variants {
        let rendered = helm::template(values)?;
        k.run_with_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered))
            .accepted()
            .map_err(|e| format!("values {values:?}: {e}"))?;
    }
    Ok(())
}

/// The chart's webhook configuration, calling the Defender under test.
fn chart_webhooks(world: &World) -> Result<String, String> {
    let ca = std::fs::read(world.defender.certs.join(defender::certs::CA_CERT)).map_err(|e| e.to_string())?;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    helm::template(&[
        "--show-only",
        "templates/validatingwebhookconfiguration.yaml",
        "--set",
        &format!("webhooks.url=https://127.0.0.1:{}/validate", world.defender.port),
        "--set",
        "certificates.source=existingSecret",
        "--set",
        "certificates.existingSecret.name=unused",
        "--set",
        &format!("certificates.existingSecret.caBundle={ca}"),
    ])
}

fn core_namespace_denied(k: &Kubectl) -> bool {
    let probe = k.run(&["delete", "namespace", "kube-node-lease", "--dry-run=server"]);
    probe.stderr.contains("admission webhook \"namespaces.defender.io\" denied")
        && probe.stderr.contains("defender/core-namespaces")
}

pub fn its_webhooks_deny(world: &mut World) -> Check {
    let rendered = chart_webhooks(world)?;
    let k = &world.cluster.kubectl;
    let ns = "e2e-chart-webhooks";
    k.ok(&["create", "namespace", ns])?;
    k.ok(&["create", "configmap", "settings", "-n", ns, "--from-literal=a=b"])?;
    // Only the chart's configuration sends Defender anything from here on.
    k.ok(&["delete", "validatingwebhookconfiguration", "defender"])?;
    let outcome = (|| {
        k.run_with_stdin(&["apply", "-f", "-"], Some(&rendered)).accepted()?;
        let managed = k.ok(&[
            "get",
            "validatingwebhookconfiguration",
            "defender",
            "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
        ])?;
        if managed.trim() != "Helm" {
            return Err(format!("the configuration in force is not the chart's (managed-by {managed:?})"));
        }
        if !env::wait_until(Duration::from_secs(30), || core_namespace_denied(k)) {
            return Err(
                "the API server never called Defender through the chart's namespaces webhook".to_owned()
            );
        }
        k.run(&["delete", "configmap", "settings", "-n", ns, "--dry-run=server"]).rejected_with(
            "admission webhook \"deletions.defender.io\" denied the request: defender/deletion-guard",
        )
    })();
    // Back to the generated configuration the other scenarios run under.
    let restored = restore_generated_webhooks(world);
    outcome.and(restored)
}

fn restore_generated_webhooks(world: &World) -> Check {
    let k = &world.cluster.kubectl;
    k.ok(&["delete", "validatingwebhookconfiguration", "defender", "--ignore-not-found"])?;
    let configuration = env::webhook_configuration(&world.defender)?;
    k.apply(&configuration.to_string()).accepted()?;
    let labels =
        k.ok(&["get", "validatingwebhookconfiguration", "defender", "-o", "jsonpath={.metadata.labels}"])?;
    if labels.contains("managed-by") {
        return Err("the chart's configuration is still in force".to_owned());
    }
    if env::wait_until(Duration::from_secs(30), || core_namespace_denied(k)) {
        Ok(())
    } else {
        Err("the generated configuration did not come back into force".to_owned())
    }
}

/// The generated certificate as a `helm upgrade` would render it: Helm
/// looks the Secret up in the cluster (`--dry-run=server`).
fn generated_certificate(world: &World, namespace: &str, renew: bool) -> Result<(Value, String), String> {
    let kubeconfig = world.cluster.dir.join("kubeconfig").display().to_string();
    let renew = format!("certificates.generated.renew={renew}");
    let rendered = objects(&helm::template(&[
        "--dry-run=server",
        // As an upgrade would: the e2e's own webhook configuration, also
        // named defender, is not the release's.
        "--take-ownership",
        "--kubeconfig",
        &kubeconfig,
        "--set",
        &format!("namespace={namespace}"),
        "--set",
        &renew,
        "--show-only",
        "templates/tls-secret.yaml",
        "--show-only",
        "templates/validatingwebhookconfiguration.yaml",
    ])?);
    let secret = rendered.iter().find(|o| o["kind"] == "Secret").ok_or("no Secret rendered")?.clone();
    let webhooks =
        rendered.iter().find(|o| o["kind"] == "ValidatingWebhookConfiguration").ok_or("no webhooks")?;
    let bundle =
        webhooks["webhooks"][0]["clientConfig"]["caBundle"].as_str().ok_or("no caBundle")?.to_owned();
    Ok((secret, bundle))
}

fn pem(base64: &Value) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.as_str().ok_or("not a string")?)
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

pub fn generated_certificate_is_kept_until_renewed(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-chart-certs";
    k.ok(&["create", "namespace", ns])?;
    let (first, _) = generated_certificate(world, ns, false)?;
    k.run_with_stdin(&["apply", "-f", "-"], Some(&first.to_string())).accepted()?;

    let (upgraded, bundle) = generated_certificate(world, ns, false)?;
    if upgraded["data"] != first["data"] {
        return Err("an upgrade generated a new certificate instead of keeping the installed one".to_owned());
    }
    if bundle != first["data"]["ca.crt"].as_str().unwrap_or_default() {
        return Err("after an upgrade the webhooks do not trust the installed CA".to_owned());
    }

    let (renewed, bundle) = generated_certificate(world, ns, true)?;
    if renewed["data"]["tls.crt"] == first["data"]["tls.crt"]
        || renewed["data"]["ca.crt"] == first["data"]["ca.crt"]
    {
        return Err("renew kept the old certificate".to_owned());
    }
    let trusted = pem(&Value::from(bundle))?;
    let (old_ca, new_ca) = (pem(&first["data"]["ca.crt"])?, pem(&renewed["data"]["ca.crt"])?);
    if !(trusted.contains(old_ca.trim()) && trusted.contains(new_ca.trim())) {
        return Err(format!(
            "while renewing, the webhooks must trust the old and the new CA; caBundle:\n{trusted}"
        ));
    }
    k.run_with_stdin(&["apply", "-f", "-"], Some(&renewed.to_string())).accepted()?;
    let (_, bundle) = generated_certificate(world, ns, false)?;
    if pem(&Value::from(bundle))?.trim() != new_ca.trim() {
        return Err("the upgrade after renewing still trusts the old CA".to_owned());
    }
    Ok(())
}
