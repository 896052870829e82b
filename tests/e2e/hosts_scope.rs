//! Hosts named outside `spec.rules[].host` and HTTPRoute hostnames: the
//! aliases controllers read from Ingress annotations, and the GRPCRoute and
//! TLSRoute kinds in each version they are served in. Creates namespaces,
//! never deletes one (no namespace-deletion budget spent).

use std::time::Duration;

use crate::World;
use crate::env::{Check, Kubectl, wait_until};

/// Alias annotations pass through the API server unvalidated; Defender judges
/// their hosts like rule hosts, on CREATE and on an UPDATE that only annotates.
pub fn alias_annotations(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-aliases";
    k.apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")).accepted()?;
    let alias = "nginx.ingress.kubernetes.io/server-alias";
    k.apply(&aliased_ingress(ns, "star", &[(alias, "www.aliases.e2e.example.com, *")]))
        .rejected_with(&format!("annotation {alias} host \"*\" matches every host"))?;
    let ip = k.apply(&aliased_ingress(ns, "ip", &[(alias, "192.0.2.10")]));
    ip.rejected_with(&format!(
        "annotation {alias} host \"192.0.2.10\" is an IP address, and IP addresses are not hostnames: use a DNS \
         name that resolves to it"
    ))?;
    println!("      $ kubectl apply -f ingress-with-ip-alias.yaml\n      {}", ip.stderr.trim());
    k.apply(&aliased_ingress(ns, "web", &[])).accepted()?;
    k.run(&["annotate", "ingress", "web", "-n", ns, &format!("{alias}=*.com")]).rejected_with(&format!(
        "annotation {alias} host \"*.com\" is a wildcard over a whole top-level domain"
    ))?;
    // The e2e policy set warns on subdomain wildcards instead of denying them.
    k.run(&["annotate", "ingress", "web", "-n", ns, "konghq.com/host-aliases=*.aliases.e2e.example.com"])
        .accepted_with_warning("Warning: defender/ingress-wildcards:")?;
    k.run(&[
        "annotate",
        "--overwrite",
        "ingress",
        "web",
        "-n",
        ns,
        &format!("{alias}=www.aliases.e2e.example.com"),
    ])
    .accepted()
}

/// GRPCRoute and TLSRoute hostnames, in every version the API server serves,
/// follow the Ingress host rules. The routes' CRDs are installed for the
/// scenario (schemaless: only Defender judges the hostnames) and removed after.
pub fn gateway_route_kinds(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-routes";
    k.apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")).accepted()?;
    let kinds = [
        ("GRPCRoute", "grpcroutes", &["v1", "v1alpha2"][..]),
        ("TLSRoute", "tlsroutes", &["v1", "v1alpha3", "v1alpha2"][..]),
    ];
    for (kind, plural, versions) in kinds {
        k.apply(&route_crd(kind, plural, versions)).accepted()?;
    }
    let result = judge_routes(k, ns, &kinds);
    // The routes go with their CRDs, on purpose: delete-protection asks for the label.
    for (_, plural, _) in kinds {
        let crd = format!("{plural}.gateway.networking.k8s.io");
        k.run(&["label", "crd", &crd, "defender.io/deletion-allowed=true"]);
        k.run(&["delete", "crd", &crd, "--wait=false"]);
    }
    result
}

fn judge_routes(k: &Kubectl, ns: &str, kinds: &[(&str, &str, &[&str])]) -> Check {
    for (_, plural, _) in kinds {
        let crd = format!("crd/{plural}.gateway.networking.k8s.io");
        let established = wait_until(Duration::from_secs(30), || {
            k.run(&["wait", "--for=condition=Established", "--timeout=5s", &crd]).code == 0
        });
        if !established {
            return Err(format!("{crd} was not established"));
        }
    }
    for (kind, _, versions) in kinds {
        let lower = kind.to_lowercase();
        for version in *versions {
            let name = format!("{lower}-{version}");
            let manifest = |hostnames: &str| route(kind, version, ns, &name, hostnames);
            k.apply(&manifest("[\"*.com\"]")).rejected_with(&format!(
                "{lower} \"{ns}/{name}\" would take traffic meant for other hosts: spec.hostnames[0] \"*.com\" is a \
                 wildcard over a whole top-level domain"
            ))?;
            k.apply(&manifest("[]")).rejected_with(
                "spec.hostnames is empty, so the route takes every host its Gateway listener accepts",
            )?;
            k.apply(&manifest("[\"198.51.100.7\"]"))
                .rejected_with("spec.hostnames[0] \"198.51.100.7\" is an IP address")?;
            k.apply(&manifest(&format!("[\"{name}.routes.e2e.example.com\"]"))).accepted()?;
        }
    }
    Ok(())
}

fn aliased_ingress(ns: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String =
        annotations.iter().map(|(key, value)| format!("\n    {key}: \"{value}\"")).collect();
    let annotations =
        if annotations.is_empty() { String::new() } else { format!("\n  annotations:{annotations}") };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}{annotations}\n\
         spec:\n  rules:\n    - host: {name}.aliases.e2e.example.com\n      http:\n        paths:\n          - path: /\n\
         \x20           pathType: Prefix\n            backend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
    )
}

fn route(kind: &str, version: &str, ns: &str, name: &str, hostnames: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  parentRefs: [{{name: public, namespace: gateways}}]\n  hostnames: {hostnames}\n\
         \x20 rules: [{{backendRefs: [{{name: backend, port: 8443}}]}}]\n"
    )
}

/// A CRD serving `versions` (the first one stored), without a schema beyond
/// "any object": the hostnames reach Defender as written.
fn route_crd(kind: &str, plural: &str, versions: &[&str]) -> String {
    let versions: String = versions
        .iter()
        .enumerate()
        .map(|(index, version)| {
            format!(
                "    - name: {version}\n      served: true\n      storage: {}\n      schema:\n        openAPIV3Schema:\n\
                 \x20         type: object\n          x-kubernetes-preserve-unknown-fields: true\n",
                index == 0
            )
        })
        .collect();
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
         name: {plural}.gateway.networking.k8s.io\n  \
         annotations: {{api-approved.kubernetes.io: \"unapproved, a schemaless copy for Defender's tests\"}}\nspec:\n  group: gateway.networking.k8s.io\n  scope: Namespaced\n  \
         names: {{kind: {kind}, plural: {plural}, singular: {}, listKind: {kind}List}}\n  versions:\n{versions}",
        kind.to_lowercase()
    )
}
