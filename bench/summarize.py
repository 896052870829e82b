"""Summarizes bench/load.sh's oha JSON files: the median of the runs per
target, as a Markdown table."""
import glob
import json
import os
import statistics
import sys

work = sys.argv[1]
targets = sys.argv[2].split()


def runs(target, kind):
    found = []
    for path in sorted(glob.glob(os.path.join(work, f"{target}-{kind}-*.json"))):
        with open(path) as f:
            found.append(json.load(f))
    return found


def median(values):
    return statistics.median(values) if values else float("nan")


print("| server | saturation req/s | success | p50 ms @rate | p99 ms @rate | p99.9 ms @rate | achieved req/s | RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for target in targets:
    saturation = runs(target, "saturation")
    rate = runs(target, "rate")
    throughput = median([r["summary"]["requestsPerSec"] for r in saturation])
    success = min([r["summary"]["successRate"] for r in saturation + rate] or [float("nan")])
    p = lambda key: median([r["latencyPercentiles"][key] * 1000 for r in rate])
    achieved = median([r["summary"]["requestsPerSec"] for r in rate])
    rss_path = os.path.join(work, f"{target}-rss")
    rss = open(rss_path).read().strip() if os.path.exists(rss_path) else "-"
    print(f"| {target} | {throughput:,.0f} | {success:.4f} | {p('p50'):.2f} | {p('p99'):.2f} | {p('p99.9'):.2f} "
          f"| {achieved:,.0f} | {rss} |")
