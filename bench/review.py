"""Prints the AdmissionReview bench/load.sh posts: a 2 KB Ingress CREATE that
every server under test allows after judging its hosts."""
import json

rules = [
    {
        "host": f"app-{i}.shop.example.com",
        "http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": f"web-{i}", "port": {"number": 80}}}}]},
    }
    for i in range(12)
]
ingress = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"ingressClassName": "nginx",
             "tls": [{"hosts": ["app-0.shop.example.com"], "secretName": "shop-tls"}], "rules": rules},
}
gvk = {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}
gvr = {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"}
print(json.dumps({
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {
        "uid": "0b3c5a8e-8a40-4f1e-9d3e-6f0c2b1d7e55", "kind": gvk, "resource": gvr,
        "requestKind": gvk, "requestResource": gvr, "name": "web", "namespace": "shop",
        "operation": "CREATE", "userInfo": {"username": "ci@example.com", "groups": ["system:authenticated"]},
        "object": ingress, "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    },
}))
