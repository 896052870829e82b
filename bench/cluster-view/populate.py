#!/usr/bin/env python3
"""Fills a cluster for bench/cluster-view-memory.sh: namespaces, then Pods,
Ingresses and Deployments spread evenly over them, shaped like real ones
(two containers with env from a Secret and a ConfigMap, volumes, probes,
labels and annotations; Ingresses with TLS and several paths). Nothing
schedules or runs them: Pods stay Pending, Deployments make no ReplicaSets.

Objects are POSTed by a pool of threads, each on its own keep-alive HTTPS
connection with the admin's client certificate. Prints one JSON line:
counts, the seconds it took, and the size of one stored Pod as served.
"""

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import ssl
import threading
import time

LOCAL = threading.local()


def digest(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"team": name[-2:], "bench.defender.io/view": "true"}}}


def pod(ns, i):
    app = f"app-{i:05d}"
    hash_ = digest(ns, i)[:10]
    env = [{"name": "LOG_LEVEL", "value": "info"},
           {"name": "LISTEN", "value": ":8080"},
           {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
           {"name": "FEATURE_FLAGS", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "flags"}}},
           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10, "timeoutSeconds": 2}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-{hash_}", "namespace": ns,
                         "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": ns,
                                    "app.kubernetes.io/version": "1.24.3", "pod-template-hash": hash_},
                         "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                                         "checksum/config": digest("config", ns, i),
                                         "checksum/secret": digest("secret", ns, i)}},
            "spec": {
                "containers": [
                    {"name": "app", "image": f"registry.example.com/{ns}/{app}:1.24.3@sha256:{digest('image', i)}",
                     "args": ["--config=/etc/app/config.yaml", "--listen=:8080", "--metrics=:9090"],
                     "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                     "env": env,
                     "envFrom": [{"configMapRef": {"name": "app-config"}}, {"secretRef": {"name": "app-secrets"}}],
                     "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                   "limits": {"cpu": "1", "memory": "512Mi"}},
                     "readinessProbe": probe, "livenessProbe": probe,
                     "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True},
                                      {"name": "tls", "mountPath": "/etc/tls", "readOnly": True},
                                      {"name": "tmp", "mountPath": "/tmp"}],
                     "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                         "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}},
                    {"name": "proxy", "image": "envoyproxy/envoy:v1.30.1",
                     "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                     "ports": [{"name": "https", "containerPort": 8443}],
                     "envFrom": [{"secretRef": {"name": "proxy-token", "optional": True}}],
                     "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                     "volumeMounts": [{"name": "tls", "mountPath": "/etc/tls", "readOnly": True}]}],
                "volumes": [{"name": "config", "configMap": {"name": "app-config"}},
                            {"name": "tls", "secret": {"secretName": f"{app}-tls"}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                "imagePullSecrets": [{"name": "registry"}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}}}}]}},
                "terminationGracePeriodSeconds": 30}}


def ingress(ns, i):
    host = f"app-{i:05d}.{ns}.example.com"
    paths = [{"path": path, "pathType": "Prefix",
              "backend": {"service": {"name": f"app-{i:05d}", "port": {"name": "http"}}}}
             for path in ("/", "/api", "/static")]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"web-{i:05d}", "namespace": ns,
                         "labels": {"app.kubernetes.io/name": f"app-{i:05d}"},
                         "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                                         "cert-manager.io/cluster-issuer": "letsencrypt"}},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": [host, f"www.{host}"], "secretName": f"app-{i:05d}-tls"}],
                     "rules": [{"host": host, "http": {"paths": paths}},
                               {"host": f"www.{host}", "http": {"paths": paths[:1]}}]}}


def deployment(ns, i):
    template = pod(ns, i)
    labels = {"app.kubernetes.io/name": f"app-{i:05d}"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"app-{i:05d}", "namespace": ns, "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels, "annotations": template["metadata"]["annotations"]},
                                  "spec": template["spec"]}}}


class Api:
    def __init__(self, args):
        host_port = args.server.removeprefix("https://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.context = ssl.create_default_context(cafile=args.ca)
        self.context.load_cert_chain(args.cert, args.key)

    def request(self, method, path, body=None):
        connection = getattr(LOCAL, "connection", None)
        if connection is None:
            connection = LOCAL.connection = http.client.HTTPSConnection(self.host, self.port, context=self.context)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            connection.close()
            LOCAL.connection = None
            raise

    def create(self, path, body):
        """POSTs body; retries while the namespace's default ServiceAccount is not made yet."""
        for attempt in range(100):
            status, data = self.request("POST", path, body)
            if status in (201, 409):
                return
            if b"serviceaccount" in data.lower() and attempt < 99:
                time.sleep(0.2)
                continue
            raise SystemExit(f"POST {path}: {status} {data[:300]!r}")


def create_all(api, threads, objects):
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: api.create(*item), objects))


def main():
    parser = argparse.ArgumentParser()
    for flag in ("server", "ca", "cert", "key"):
        parser.add_argument(f"--{flag}", required=True)
    for flag, default in (("namespaces", 1000), ("pods", 10000), ("ingresses", 2000), ("deployments", 500),
                          ("threads", 8)):
        parser.add_argument(f"--{flag}", type=int, default=default)
    args = parser.parse_args()
    api = Api(args)
    began = time.monotonic()
    names = [f"view-{n:04d}" for n in range(args.namespaces)]
    create_all(api, args.threads, [("/api/v1/namespaces", namespace(name)) for name in names])

    def spread(count, path, make):
        return [(path.format(names[i % len(names)]), make(names[i % len(names)], i)) for i in range(count)]

    create_all(api, args.threads,
               spread(args.pods, "/api/v1/namespaces/{}/pods", pod)
               + spread(args.ingresses, "/apis/networking.k8s.io/v1/namespaces/{}/ingresses", ingress)
               + spread(args.deployments, "/apis/apps/v1/namespaces/{}/deployments", deployment))
    seconds = time.monotonic() - began
    status, data = api.request("GET", f"/api/v1/namespaces/{names[0]}/pods?limit=1")
    one_pod = json.dumps(json.loads(data)["items"][0], separators=(",", ":"))
    print(json.dumps({"namespaces": args.namespaces, "pods": args.pods, "ingresses": args.ingresses,
                      "deployments": args.deployments, "seconds": round(seconds, 1),
                      "pod_bytes": len(one_pod)}))


if __name__ == "__main__":
    main()
