"""The measuring half of bench/apiserver.sh.

    measure.py webhook NAME URL CA_BUNDLE_FILE < rendered.json
        deploy/base's ValidatingWebhookConfiguration (from kubectl's JSON
        documents), renamed NAME, pointed at Defender on URL and limited to
        namespaces labelled bench.defender.io/admission=NAME.

    measure.py inside LOG...
        From Defender's JSON decision logs, the median time each spent
        inside Defender per request kind (its latency_ms field).

    measure.py run --server URL --ca CA --cert CERT --key KEY [--iterations N]
        Asserts each configuration is in force, then times dry-run namespace
        DELETEs, real namespace DELETEs (of a namespace created for it just
        before, untimed) and dry-run Ingress CREATEs, one request per
        configuration in turn (the order rotates every iteration), over one
        keep-alive connection as the cluster admin. Prints a Markdown table.

Each configuration owns two namespaces, selected by the label
bench.defender.io/admission=<configuration>: bench-<configuration> (an
ordinary one, deleted and given Ingresses in the measurements) and
bench-core-<configuration> (labelled core, for the assertions).
"""
import argparse
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import time

# Label value -> what it means; "defender*" configurations are Defender webhooks.
CONFIGURATIONS = {
    "none": "no admission policy",
    "defender": "Defender webhook, budgets in memory",
    "defender-lease": "Defender webhook, shared budget Lease (in-cluster default)",
    "vap": "ValidatingAdmissionPolicy",
}
LABEL = "bench.defender.io/admission"
HERE = os.path.dirname(os.path.abspath(__file__))


def webhook(name, url, ca_bundle_file):
    text, documents, decoder, at = sys.stdin.read(), [], json.JSONDecoder(), 0
    # kubectl prints one JSON document per object, back to back.
    while at < len(text.rstrip()):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
        while at < len(text) and text[at].isspace():
            at += 1
    configuration = next(d for d in documents if d["kind"] == "ValidatingWebhookConfiguration")
    configuration["metadata"]["name"] = name
    with open(ca_bundle_file) as f:
        ca_bundle = f.read().strip()
    for hook in configuration["webhooks"]:
        hook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
        selector = hook.setdefault("namespaceSelector", {})
        selector.setdefault("matchLabels", {})[LABEL] = name
    json.dump(configuration, sys.stdout)


def ingress(violating):
    """bench/review.py's Ingress: the 2 KB one, or the one with bad hosts. The
    violating one keeps to hosts the API server's own validation accepts
    ("*" alone it refuses before admission)."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "..", "review.py"), "--object"],
                         check=True, capture_output=True, text=True).stdout
    obj = json.loads(out)
    del obj["metadata"]["namespace"]
    if violating:
        del obj["spec"]["rules"][3]["host"]
        obj["spec"]["rules"][7]["host"] = "*.com"
    return obj


class Client:
    """One keep-alive HTTPS connection to the API server, reopened if it drops."""

    def __init__(self, server, ca, cert, key):
        host_port = server.removeprefix("https://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.context = ssl.create_default_context(cafile=ca)
        self.context.load_cert_chain(cert, key)
        self.connection = None

    def request(self, method, path, body=None):
        """Returns (status, parsed body, seconds)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPSConnection(self.host, self.port, context=self.context)
                self.connection.connect()
            try:
                began = time.perf_counter()
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - began
                return response.status, json.loads(data or b"{}"), elapsed
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def delete_namespace(name, dry_run=True):
    return "DELETE", f"/api/v1/namespaces/{name}" + ("?dryRun=All" if dry_run else ""), None


def create_namespace(name, configuration):
    """A namespace of `configuration`, deletable at once (no confirmation)."""
    labels = {LABEL: configuration, "defender.io/skip-delete-confirmation": "true"}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    return "POST", "/api/v1/namespaces", json.dumps(body)


def create_ingress(namespace, body):
    return "POST", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses?dryRun=All", body


def denied_by(status, body):
    """Which mechanism denied a request: 'defender', 'vap' or None if allowed."""
    if status < 400:
        return None
    message = body.get("message", "")
    if "defender/" in message:
        return "defender"
    if "ValidatingAdmissionPolicy" in message:
        return "vap"
    raise SystemExit(f"unexpected answer {status}: {message}")


def await_in_force(client, good_ingress, bad_ingress, timeout=60):
    """Every configuration judges its namespaces, and only them: the violating
    requests are denied by the right mechanism, or allowed under none. Polls,
    because the API server picks up new configurations within seconds."""
    deadline = time.monotonic() + timeout
    while True:
        wrong = []
        for configuration in CONFIGURATIONS:
            expected = None if configuration == "none" else configuration.split("-")[0]
            checks = [
                ("core namespace DELETE", delete_namespace(f"bench-core-{configuration}"), expected),
                ("violating Ingress CREATE", create_ingress(f"bench-{configuration}", bad_ingress), expected),
                ("namespace DELETE", delete_namespace(f"bench-{configuration}"), None),
                ("Ingress CREATE", create_ingress(f"bench-{configuration}", good_ingress), None),
            ]
            for what, (method, path, body), want in checks:
                status, answer, _ = client.request(method, path, body)
                got = denied_by(status, answer)
                if got != want:
                    wrong.append(f"{configuration}: {what} was {'denied by ' + got if got else 'allowed'}")
        if not wrong:
            return
        if time.monotonic() > deadline:
            raise SystemExit("configurations not in force: " + "; ".join(wrong))
        time.sleep(0.5)


def percentile(values, p):
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    lower = int(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


def run(args):
    client = Client(args.server, args.ca, args.cert, args.key)
    good = json.dumps(ingress(violating=False))
    bad = json.dumps(ingress(violating=True))
    await_in_force(client, good, bad)
    print("every configuration in force: violating requests denied by Defender and by the VAPs, "
          "allowed without policy", file=sys.stderr)
    # Each operation: what to do first (untimed, or None), and the timed request.
    operations = {
        "namespace DELETE (dry run)": (None, lambda c, i: delete_namespace(f"bench-{c}")),
        "namespace DELETE (real)": (
            lambda c, i: create_namespace(f"bench-{c}-{i}", c),
            lambda c, i: delete_namespace(f"bench-{c}-{i}", dry_run=False),
        ),
        "Ingress CREATE (2 KB)": (None, lambda c, i: create_ingress(f"bench-{c}", good)),
    }
    samples = {(op, c): [] for op in operations for c in CONFIGURATIONS}
    names = list(CONFIGURATIONS)
    for i in range(args.warmup + args.iterations):
        order = names[i % len(names):] + names[:i % len(names)]
        for op, (prepare, request) in operations.items():
            for configuration in order:
                if prepare:
                    status, answer, _ = client.request(*prepare(configuration, i))
                    if status >= 300:
                        raise SystemExit(f"preparing {op} under {configuration}: {status} {answer.get('message')}")
                method, path, body = request(configuration, i)
                status, answer, seconds = client.request(method, path, body)
                if status >= 300:
                    raise SystemExit(f"{op} under {configuration}: {status} {answer.get('message')}")
                if i >= args.warmup:
                    samples[(op, configuration)].append(seconds * 1000)
    print("| request | configuration | n | median ms | p99 ms | added median ms | added p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for op in operations:
        base = samples[(op, "none")]
        base_median, base_p99 = statistics.median(base), percentile(base, 99)
        for configuration in CONFIGURATIONS:
            values = samples[(op, configuration)]
            median, p99 = statistics.median(values), percentile(values, 99)
            added = "-" if configuration == "none" else f"{median - base_median:+.2f}"
            added_p99 = "-" if configuration == "none" else f"{p99 - base_p99:+.2f}"
            print(f"| {op} | {CONFIGURATIONS[configuration]} | {len(values)} | {median:.2f} | {p99:.2f} "
                  f"| {added} | {added_p99} |")
    print()
    for op in operations:
        vap = statistics.median(samples[(op, "vap")])
        for configuration in ("defender", "defender-lease"):
            gap = statistics.median(samples[(op, configuration)]) - vap
            print(f"- {op}, {CONFIGURATIONS[configuration]}: median {gap:+.2f} ms from the VAP's")


def inside(logs):
    """Median latency_ms of the decisions in each Defender log, per kind."""
    for path in logs:
        by_kind = {}
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                fields = record.get("fields", record)
                if "latency_ms" in fields:
                    dry_run = " (dry run)" if fields.get("dry_run") else ""
                    key = f"{fields.get('kind')} {fields.get('operation')}{dry_run}"
                    by_kind.setdefault(key, []).append(fields["latency_ms"])
        summary = ", ".join(f"{kind} {statistics.median(values):.3f} ms (n={len(values)})"
                            for kind, values in sorted(by_kind.items()))
        print(f"- inside {os.path.basename(path).removesuffix('.log')}, median: {summary}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    hook = sub.add_parser("webhook")
    hook.add_argument("name")
    hook.add_argument("url")
    hook.add_argument("ca_bundle_file")
    logs = sub.add_parser("inside")
    logs.add_argument("logs", nargs="+")
    measure = sub.add_parser("run")
    measure.add_argument("--server", required=True)
    measure.add_argument("--ca", required=True)
    measure.add_argument("--cert", required=True)
    measure.add_argument("--key", required=True)
    measure.add_argument("--iterations", type=int, default=500)
    measure.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if args.command == "webhook":
        webhook(args.name, args.url, args.ca_bundle_file)
    elif args.command == "inside":
        inside(args.logs)
    else:
        run(args)


if __name__ == "__main__":
    main()
