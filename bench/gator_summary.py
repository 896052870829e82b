"""Summarizes bench/gator.sh's runs as one Markdown table: per object, gator's
Rego and CEL engines and Defender (whole review, and evaluation alone),
medians of the rounds. Fails if a peer does not judge an object the way
Defender's policy does (no violation on the good Ingress, some on the bad
one): a comparison with a policy that does nothing would be meaningless."""
import glob
import json
import os
import re
import statistics
import sys

work = sys.argv[1]
objects = sys.argv[2:]
GO_UNITS = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "μs": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def go_duration_us(text):
    """A Go time.Duration string ("12.5µs", "1m2.5s") in microseconds."""
    parts = re.findall(r"([0-9.]+)(ns|us|µs|μs|ms|s|m|h)", text)
    if not parts:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(value) * GO_UNITS[unit] for value, unit in parts)


def load(pattern):
    found = []
    for path in sorted(glob.glob(os.path.join(work, pattern))):
        with open(path) as f:
            found.append(json.load(f))
    if not found:
        sys.exit(f"no results match {pattern}")
    return found


def gator_row(engine, obj):
    runs = [run[0] for run in load(f"gator-{engine}-{obj}-*.json")]
    violations = statistics.median(r["violationCount"] / r["totalReviews"] for r in runs)
    return {
        "name": f"gator {engine}",
        "rps": statistics.median(r["reviewsPerSecond"] for r in runs),
        "p50": statistics.median(go_duration_us(r["latencies"]["p50"]) for r in runs),
        "p95": statistics.median(go_duration_us(r["latencies"]["p95"]) for r in runs),
        "p99": statistics.median(go_duration_us(r["latencies"]["p99"]) for r in runs),
        "verdict": f"deny ({violations:g} violation{'s' if violations != 1 else ''})" if violations else "allow",
        "denies": violations > 0,
        "allocs": statistics.median(r["memoryStats"]["allocsPerReview"] for r in runs),
    }


def defender_rows(obj):
    runs = load(f"defender-{obj}-*.json")
    rows = []
    for path, name in (("review", "Defender, whole review"), ("evaluate", "Defender, evaluation only")):
        rows.append({
            "name": name,
            "rps": statistics.median(r[path]["reviews_per_second"] for r in runs),
            "p50": statistics.median(r[path]["p50_ns"] / 1e3 for r in runs),
            "p95": statistics.median(r[path]["p95_ns"] / 1e3 for r in runs),
            "p99": statistics.median(r[path]["p99_ns"] / 1e3 for r in runs),
            "verdict": runs[0]["verdict"],
            "denies": runs[0]["verdict"] == "deny",
            "allocs": None,
        })
    return rows


print("| object | engine | reviews/s | p50 µs | p95 µs | p99 µs | verdict | allocs/review "
      "| Defender's whole review, throughput ratio |")
print("|---|---|---|---|---|---|---|---|---|")
wrong = []
for obj in objects:
    defender = defender_rows(obj)
    rows = [gator_row("rego", obj), gator_row("cel", obj)] + defender
    expect_deny = "violating" in obj
    for row in rows:
        if row["denies"] != expect_deny:
            wrong.append(f"{row['name']} on {obj}: {row['verdict']}")
        ratio = "-" if row in defender else f"{defender[0]['rps'] / row['rps']:.1f}x"
        allocs = "-" if row["allocs"] is None else f"{row['allocs']:,.0f}"
        print(f"| {obj} | {row['name']} | {row['rps']:,.0f} | {row['p50']:.1f} | {row['p95']:.1f} "
              f"| {row['p99']:.1f} | {row['verdict']} | {allocs} | {ratio} |")
if wrong:
    sys.exit("judged differently than expected: " + "; ".join(wrong))
