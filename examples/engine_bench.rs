//! In-process review cost, measured the way bench/gator.sh measures its
//! peer: each object file (a bare Kubernetes object, JSON) is wrapped as the
//! CREATE AdmissionReview the API server would send, then reviewed
//! `--iterations` times on one thread with the embedded policies, timing each
//! review. Prints one JSON line per object with reviews per second and the
//! latency percentiles of two paths:
//!
//! - `review`: what the server does per request: parse the AdmissionReview
//!   bytes, evaluate, serialize the response;
//! - `evaluate`: policy evaluation alone, on a request parsed once.
//!
//!     cargo run --release --example engine_bench -- --iterations 10000 ingress.json

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use defender::admission;
use defender::config;
use defender::engine::Engine;
use defender::request::Operation;
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use serde_json::{Value, json};

// The allocator `defender serve` runs with, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Timed reviews per object and path.
    #[arg(long, default_value_t = 10_000)]
    iterations: usize,
    /// Untimed reviews per object before timing.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Bare objects (JSON), each reviewed as a CREATE.
    #[arg(required = true)]
    objects: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.iterations > 0, "--iterations must be positive");
    let engine = Engine::new(config::load_embedded()?);
    let view = MemoryView::default();
    for path in &args.objects {
        let text = std::fs::read(path).with_context(|| path.display().to_string())?;
        let object: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a JSON object", path.display()))?;
        let mut synthetic = Synthetic::new(Operation::Create);
        synthetic.object = Some(object);
        let body = serde_json::to_vec(&synthetic.to_review()?)?;

        let parsed = admission::parse_review(&body)?;
        let verdict = engine.decide(&parsed, &engine.context(jiff::Timestamp::now(), &view)).outcome();

        let review = || {
            let request = admission::parse_review(black_box(&body)).expect("parsed once already");
            let decision = engine.decide(&request, &engine.context(jiff::Timestamp::now(), &view));
            black_box(serde_json::to_vec(&admission::respond(&request, &decision)).expect("serializable"));
        };
        let evaluate = || {
            let context = engine.context(jiff::Timestamp::now(), &view);
            black_box(engine.decide(black_box(&parsed), &context));
        };
        let line = json!({
            "object": path.display().to_string(),
            "review_bytes": body.len(),
            "verdict": verdict,
            "iterations": args.iterations,
            "review": measure(args.warmup, args.iterations, review),
            "evaluate": measure(args.warmup, args.iterations, evaluate),
        });
        println!("{line}");
    }
    Ok(())
}

/// Times each call of `once`; throughput counts the whole timed loop.
fn measure(warmup: usize, iterations: usize, mut once: impl FnMut()) -> Value {
    for _ in 0..warmup {
        once();
    }
    let mut durations = Vec::with_capacity(iterations);
    let started = Instant::now();
    for _ in 0..iterations {
        let began = Instant::now();
        once();
        durations.push(began.elapsed());
    }
    let total = started.elapsed();
    durations.sort_unstable();
    let nanos = |d: Duration| d.as_nanos() as u64;
    json!({
        "reviews_per_second": iterations as f64 / total.as_secs_f64(),
        "mean_ns": nanos(durations.iter().sum::<Duration>()) / iterations as u64,
        "p50_ns": nanos(percentile(&durations, 50.0)),
        "p95_ns": nanos(percentile(&durations, 95.0)),
        "p99_ns": nanos(percentile(&durations, 99.0)),
        "max_ns": nanos(durations[iterations - 1]),
    })
}

/// Linear interpolation between the closest ranks of a sorted, non-empty slice.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lower, upper) = (rank.floor() as usize, rank.ceil() as usize);
    let fraction = rank - lower as f64;
    sorted[lower] + (sorted[upper].saturating_sub(sorted[lower])).mul_f64(fraction)
}
