"""Prints the Ingress the benchmarks judge: a 2 KB Ingress with 12 hosts.

    python3 bench/review.py               the AdmissionReview bench/load.sh posts:
                                          a CREATE of that Ingress, which every
                                          server under test allows after judging it
    python3 bench/review.py --object      the bare Ingress (gator reviews bare objects)
    python3 bench/review.py --object --violating
                                          the same Ingress with four bad rule hosts:
                                          none, "*", "*.com" and "*.example.com"
"""
import argparse
import json


def ingress(violating=False):
    rules = [
        {
            "host": f"app-{i}.shop.example.com",
            "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                "backend": {"service": {"name": f"web-{i}", "port": {"number": 80}}}}]},
        }
        for i in range(12)
    ]
    if violating:
        del rules[3]["host"]
        rules[5]["host"] = "*"
        rules[7]["host"] = "*.com"
        rules[9]["host"] = "*.example.com"
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": ["app-0.shop.example.com"], "secretName": "shop-tls"}], "rules": rules},
    }


def create_review(obj):
    gvk = {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}
    gvr = {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"}
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0b3c5a8e-8a40-4f1e-9d3e-6f0c2b1d7e55", "kind": gvk, "resource": gvr,
            "requestKind": gvk, "requestResource": gvr, "name": "web", "namespace": "shop",
            "operation": "CREATE", "userInfo": {"username": "ci@example.com", "groups": ["system:authenticated"]},
            "object": obj, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--object", action="store_true", help="print the bare Ingress, not an AdmissionReview")
    parser.add_argument("--violating", action="store_true", help="give four rules bad hosts")
    args = parser.parse_args()
    obj = ingress(args.violating)
    print(json.dumps(obj if args.object else create_review(obj)))


if __name__ == "__main__":
    main()
