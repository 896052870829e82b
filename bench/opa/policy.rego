# The ingress-hosts and deletion-guard rules in Rego, served by OPA the way
# it is deployed for admission control (POST / evaluates data.system.main
# with the AdmissionReview as input). The peer in bench/load.sh.
package system

import rego.v1

main := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": response,
}

default uid := ""

uid := input.request.uid

response := {"uid": uid, "allowed": true} if count(deny) == 0

response := {
	"uid": uid,
	"allowed": false,
	"status": {"code": 403, "reason": "Forbidden", "message": concat("\n", deny)},
} if count(deny) > 0

guarded_kinds := {"Ingress", "Service", "Secret", "ConfigMap"}

deny contains msg if {
	input.request.operation == "DELETE"
	input.request.kind.kind in guarded_kinds
	not deletion_allowed
	msg := sprintf("%s %q is protected against deletion", [input.request.kind.kind, input.request.name])
}

deletion_allowed if input.request.oldObject.metadata.labels["defender.io/deletion-allowed"] == "true"

deny contains msg if {
	input.request.kind.kind == "Ingress"
	input.request.operation in {"CREATE", "UPDATE"}
	some i, rule in input.request.object.spec.rules
	not concrete_host(rule)
	msg := sprintf("spec.rules[%d] has no host or a wildcard host", [i])
}

deny contains msg if {
	input.request.kind.kind == "Ingress"
	input.request.operation in {"CREATE", "UPDATE"}
	input.request.object.spec.defaultBackend
	msg := "spec.defaultBackend receives traffic for every host"
}

concrete_host(rule) if {
	rule.host != ""
	not contains(rule.host, "*")
}
