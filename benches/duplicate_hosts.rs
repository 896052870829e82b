//! What an Ingress CREATE costs as the cluster grows: the review with the
//! embedded policies (duplicate-hosts among them) against a view holding
//! 1k, 10k and 50k routes. The cost must not grow with the cluster. Run
//! with `cargo bench --bench duplicate_hosts`.
//!
//! Two clusters per size:
//! - `spread`: one Ingress per host (`app-N.example.com`), in 100 namespaces;
//!   the request (12 hosts) takes 12 hosts already served;
//! - `one-host`: every Ingress serves `shop.example.com/` from its own
//!   namespace; the request's one route conflicts with all of them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use defender::admission;
use defender::config;
use defender::engine::Engine;
use defender::request::Operation;
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use serde_json::{Value, json};

const SIZES: [usize; 3] = [1_000, 10_000, 50_000];

fn ingress(namespace: &str, name: &str, hosts: &[String]) -> Value {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|host| {
            json!({"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}})
        })
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": name, "namespace": namespace}, "spec": {"rules": rules}})
}

fn view(
    routes: usize,
    host_of: impl Fn(usize) -> String,
    namespace_of: impl Fn(usize) -> String,
) -> MemoryView {
    let mut view = MemoryView::default();
    for i in 0..routes {
        let object = ingress(&namespace_of(i), &format!("web-{i}"), &[host_of(i)]);
        view.add_manifest(&object).expect("a valid Ingress");
    }
    view
}

fn create(object: Value) -> Vec<u8> {
    let mut synthetic = Synthetic::new(Operation::Create);
    synthetic.object = Some(object);
    serde_json::to_vec(&synthetic.to_review().expect("buildable review")).expect("serializable")
}

fn duplicate_hosts(c: &mut Criterion) {
    let engine = Engine::new(config::load_embedded().expect("embedded policies load"));
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let twelve: Vec<String> = (0..12).map(|i| format!("app-{i}.example.com")).collect();
    let spread_request = create(ingress("intruder", "web", &twelve));
    let one_host_request = create(ingress("intruder", "web", &["shop.example.com".to_owned()]));
    let mut group = c.benchmark_group("duplicate-hosts");
    for size in SIZES {
        let clusters = [
            (
                "spread",
                view(size, |i| format!("app-{i}.example.com"), |i| format!("team-{}", i % 100)),
                &spread_request,
            ),
            (
                "one-host",
                view(size, |_| "shop.example.com".to_owned(), |i| format!("team-{i}")),
                &one_host_request,
            ),
        ];
        for (cluster, view, body) in &clusters {
            let request = admission::parse_review(body).expect("valid review");
            let decision = engine.decide(&request, &engine.context(now, view));
            assert!(
                decision.fired_policies().contains(&"duplicate-hosts"),
                "the request conflicts in the {cluster} cluster"
            );
            group.bench_with_input(BenchmarkId::new(*cluster, size), &request, |b, request| {
                b.iter(|| black_box(engine.decide(black_box(request), &engine.context(now, view))))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = duplicate_hosts
}
criterion_main!(benches);
