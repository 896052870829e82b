"""Checks that bench/gator/template.yaml judges Ingresses as Defender's
ingress-hosts policy does, in both engines, before bench/gator.sh times them:
edge-case hosts (missing, blank, "*", "*.", "*.com", "*.example.com",
misplaced '*', trailing dots and spaces), TLS hosts and a default backend,
each as one Ingress, through `gator test` (CEL, then Rego) and
`defender check`. Prints one line per disagreement and exits 1 if any.

    python3 bench/gator/equivalence.py GATOR DEFENDER
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RULE_HOSTS = [None, "", "  ", ".", "*", "*.", "*.com", "*.com.", " *.com ", "*..com", "*.example.com",
              "*..example.com", "*.*.example.com", "foo.*.example.com", "app.example.com",
              "app.example.com.", "localhost"]
TLS_HOSTS = [["a.example.com", "*"], ["", "ok.example.com"], ["*.com"], ["*.example.com"]]


def ingress(name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def cases():
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    for i, host in enumerate(RULE_HOSTS):
        rule = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
        if host is not None:
            rule["host"] = host
        yield ingress(f"rule-{i}", {"rules": [rule]})
    for i, hosts in enumerate(TLS_HOSTS):
        yield ingress(f"tls-{i}", {"rules": [{"host": "a.example.com"}], "tls": [{"hosts": hosts}]})
    yield ingress("default-backend", {"defaultBackend": backend})
    yield ingress("empty", {})


def gator_denied(gator, files, rego):
    command = [gator, "test", "-o", "json", "-f", os.path.join(HERE, "template.yaml"),
               "-f", os.path.join(HERE, "constraint.yaml")]
    if rego:
        command.append("--enable-k8s-native-validation=false")
    for path in files:
        command += ["-f", path]
    # Exit code 1 means "violations found"; anything else is a failure.
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        sys.exit(f"gator test failed: {result.stderr}")
    return {v["violatingObject"]["metadata"]["name"] for v in json.loads(result.stdout or "[]")}


def defender_denied(defender, list_file):
    result = subprocess.run([defender, "check", "-f", list_file], capture_output=True, text=True)
    if result.returncode not in (0, 1):
        sys.exit(f"defender check failed: {result.stderr}")
    return {line.split('"')[1].split("/")[1] for line in result.stdout.splitlines() if line.startswith("deny")}


def main():
    gator, defender = sys.argv[1], sys.argv[2]
    objects = list(cases())
    with tempfile.TemporaryDirectory() as work:
        files = []
        for obj in objects:
            path = os.path.join(work, obj["metadata"]["name"] + ".json")
            with open(path, "w") as f:
                json.dump(obj, f)
            files.append(path)
        list_file = os.path.join(work, "all.json")
        with open(list_file, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, f)
        verdicts = {
            "defender": defender_denied(defender, list_file),
            "gator cel": gator_denied(gator, files, rego=False),
            "gator rego": gator_denied(gator, files, rego=True),
        }
    disagreements = 0
    for obj in objects:
        name = obj["metadata"]["name"]
        seen = {judge: name in denied for judge, denied in verdicts.items()}
        if len(set(seen.values())) > 1:
            disagreements += 1
            print(f"{name} {json.dumps(obj['spec'])}: " + ", ".join(
                f"{judge} {'denies' if d else 'allows'}" for judge, d in seen.items()))
    if disagreements:
        sys.exit(f"{disagreements} of {len(objects)} Ingresses judged differently")
    print(f"{len(objects)} edge-case Ingresses: Defender, gator CEL and gator Rego agree "
          f"({len(verdicts['defender'])} denied)", file=sys.stderr)


if __name__ == "__main__":
    main()
