//! Never failing open by size: an Ingress UPDATE the API server accepts is
//! judged by Defender however large its AdmissionReview grows.

use std::process::Command;

use serde_json::{Value, json};

use crate::World;
use crate::env::Check;

/// Paths of `<`, which the API server's encoder writes as six-byte `\u003c`
/// escapes: 1,200 paths of 1,000 make an object of 1.2 MiB (under etcd's
/// 1.5 MiB request limit) and an UPDATE review of over 14 MiB.
const PATHS: usize = 1200;
const PATH_LENGTH: usize = 1000;

pub fn oversized_ingress_update(world: &mut World) -> Check {
    let k = &world.cluster.kubectl;
    let ns = "e2e-oversized";
    k.ok(&["create", "namespace", ns])?;
    let base = format!("{}/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", world.cluster.url());
    // kubectl would send these escaped too, six times over the API server's
    // 3 MiB request limit; raw JSON keeps each `<` one byte.
    send(world, "POST", &base, &ingress(ns, "shop.example.com"), "201")?;
    let answer = send(world, "PUT", &format!("{base}/web"), &ingress(ns, "*.com"), "403")
        .map_err(|error| format!("{error}\nthe API server on its webhooks: {}", webhook_log_lines(world)))?;
    for expected in ["defender/ingress-hosts", "*.com"] {
        if !answer.contains(expected) {
            return Err(format!("the oversized UPDATE was refused, but not by Defender's verdict: {answer}"));
        }
    }
    let host = k.ok(&["get", "ingress", "web", "-n", ns, "-o", "jsonpath={.spec.rules[0].host}"])?;
    if host.trim() != "shop.example.com" {
        return Err(format!("the Ingress now serves {host:?}"));
    }
    if world.defender.log_text().contains("refused a request body over") {
        return Err("Defender refused a request body as too large".to_owned());
    }
    Ok(())
}

/// What the API server logged about calling webhooks, for a failure message.
fn webhook_log_lines(world: &World) -> String {
    let log = std::fs::read_to_string(world.cluster.dir.join("logs/kube-apiserver.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|line| line.contains("webhook")).collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

fn ingress(ns: &str, host: &str) -> Value {
    let paths: Vec<Value> = (0..PATHS)
        .map(|index| {
            json!({
                "path": format!("/{index}/{}", "<".repeat(PATH_LENGTH)),
                "pathType": "ImplementationSpecific",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}
            })
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"rules": [{"host": host, "http": {"paths": paths}}]}
    })
}

/// Sends `object` with curl as the cluster admin; the API server's answer, if its status is `expected`.
fn send(world: &World, method: &str, url: &str, object: &Value, expected: &str) -> Result<String, String> {
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), object.to_string()).map_err(|e| e.to_string())?;
    let output = Command::new("curl")
        .args(["-sS", "-X", method, "-H", "Content-Type: application/json", "-w", "\n%{http_code}"])
        .arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .args(world.cluster.admin_curl_args())
        .arg(url)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    match text.rsplit_once('\n') {
        Some((body, code)) if code == expected => Ok(body.to_owned()),
        _ => Err(format!(
            "{method} {url}: expected HTTP {expected}, got {}: {}",
            text.rsplit_once('\n').map_or("nothing", |(_, code)| code),
            text.chars().take(300).collect::<String>() + &String::from_utf8_lossy(&output.stderr)
        )),
    }
}
