//! Per-review cost of the engine: evaluation alone, the AdmissionReview parse
//! (next to kube's `AdmissionReview<DynamicObject>` parse, the baseline it
//! replaced), and the whole path a server request takes (parse, evaluate,
//! serialize the response). Run with `cargo bench --bench engine`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use defender::admission;
use defender::config;
use defender::engine::Engine;
use defender::request::{Operation, Request};
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};

/// Counts heap allocations, to report allocations per review.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn review(operation: Operation, object: Value) -> Vec<u8> {
    let mut synthetic = Synthetic::new(operation);
    match synthetic.operation {
        Operation::Create => synthetic.object = Some(object),
        _ => {
            synthetic.old_object = Some(object);
            // Dry runs only check budgets, so repeated deletes measure the same
            // decision on every iteration instead of filling the pod burst budget.
            synthetic.dry_run = true;
        }
    }
    serde_json::to_vec(&synthetic.to_review().expect("buildable review")).expect("serializable")
}

/// The baseline: the request as kube's own types parse the review, which
/// buffers it whole (serde's flatten) and keeps every field.
fn kube_parse(body: &[u8]) -> Request {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).expect("valid review");
    let request: AdmissionRequest<DynamicObject> = review.try_into().expect("a request");
    Request::from(request)
}

/// Heap allocations made while `work` runs.
fn allocations<T>(work: impl FnOnce() -> T) -> (u64, T) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let result = work();
    (ALLOCATIONS.load(Ordering::Relaxed) - before, result)
}

/// An Ingress of about 2 KB: 12 hosts with paths and TLS.
fn ingress() -> Value {
    let rules: Vec<Value> = (0..12)
        .map(|i| {
            json!({"host": format!("app-{i}.shop.example.com"), "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": format!("web-{i}"), "port": {"number": 80}}}}
            ]}})
        })
        .collect();
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
           "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["app-0.shop.example.com"], "secretName": "tls"}], "rules": rules}})
}

/// A Pod of about 20 KB, as kubectl get -o json shows a busy one.
fn pod() -> Value {
    let env: Vec<Value> = (0..300)
        .map(|i| json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}-xxxxxxxx")}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-7d9f", "namespace": "shop", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.2.3", "env": env}]}})
}

/// A ConfigMap of about 1 MB.
fn config_map() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bundle", "namespace": "shop"},
           "data": {"bundle.js": "x".repeat(1 << 20)}})
}

fn engine_benches(c: &mut Criterion) {
    let engine = Engine::new(config::load_embedded().expect("embedded policies load"));
    let view = MemoryView::default();
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let cases = [
        (
            "namespace-delete-core",
            review(
                Operation::Delete,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
            ),
        ),
        ("ingress-create-2kb", review(Operation::Create, ingress())),
        ("pod-delete-20kb", review(Operation::Delete, pod())),
        (
            "secret-delete",
            review(
                Operation::Delete,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}}),
            ),
        ),
        ("configmap-delete-1mb", review(Operation::Delete, config_map())),
    ];
    let mut evaluate = c.benchmark_group("evaluate");
    for (name, body) in &cases {
        let request = admission::parse_review(body).expect("valid review");
        evaluate.bench_function(*name, |b| {
            b.iter(|| black_box(engine.decide(black_box(&request), &engine.context(now, &view))))
        });
    }
    evaluate.finish();
    for (name, body) in &cases {
        let (kube, _) = allocations(|| kube_parse(body));
        let (parse, request) = allocations(|| admission::parse_review(body).expect("valid review"));
        let (evaluate, decision) = allocations(|| engine.decide(&request, &engine.context(now, &view)));
        let (respond, _) = allocations(|| {
            black_box(serde_json::to_vec(&admission::respond(&request, &decision)).expect("serializable"))
        });
        println!(
            "allocations/{name}: {} in all (parse {parse}, evaluate {evaluate}, respond {respond}); \
             kube's parse {kube}",
            parse + evaluate + respond
        );
    }
    let mut parse = c.benchmark_group("parse");
    for (name, body) in &cases {
        parse.bench_function(*name, |b| {
            b.iter(|| black_box(admission::parse_review(black_box(body)).expect("valid review")))
        });
    }
    parse.finish();
    let mut kube = c.benchmark_group("parse-kube");
    for (name, body) in &cases {
        kube.bench_function(*name, |b| b.iter(|| black_box(kube_parse(black_box(body)))));
    }
    kube.finish();
    let mut full = c.benchmark_group("parse-evaluate-respond");
    for (name, body) in &cases {
        full.bench_function(*name, |b| {
            b.iter(|| {
                let request = admission::parse_review(black_box(body)).expect("valid review");
                let decision = engine.decide(&request, &engine.context(now, &view));
                black_box(serde_json::to_vec(&admission::respond(&request, &decision)).expect("serializable"))
            })
        });
    }
    full.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = engine_benches
}
criterion_main!(benches);
