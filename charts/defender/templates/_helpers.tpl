{{/* Defender's namespace: .Values.namespace, or the release's. */}}
{{- define "defender.namespace" -}}
{{- .Values.namespace | default .Release.Namespace -}}
{{- end }}

{{/* What every object carries: deploy/'s labels, and Helm's. */}}
{{- define "defender.labels" -}}
app.kubernetes.io/name: defender
app.kubernetes.io/part-of: defender
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The webhook's own objects (Deployment, pods, Service, PDB, webhooks). */}}
{{- define "defender.webhookLabels" -}}
{{ include "defender.labels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* What selects Defender's pods; immutable on a Deployment, so never more. */}}
{{- define "defender.selectorLabels" -}}
app.kubernetes.io/name: defender
{{- end }}

{{- define "defender.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt. */}}
{{- define "defender.tlsSecret" -}}
{{- if eq .Values.certificates.source "existingSecret" -}}
{{- required "certificates.existingSecret.name: name the Secret holding tls.crt and tls.key (certificates.source is existingSecret)" .Values.certificates.existingSecret.name -}}
{{- else -}}
defender-tls
{{- end -}}
{{- end }}

{{/* The policy directory's ConfigMap, or "" for the embedded set. */}}
{{- define "defender.policiesConfigMap" -}}
{{- if .Values.policies.existingConfigMap -}}
{{ .Values.policies.existingConfigMap }}
{{- else if .Values.policies.files -}}
defender-policies
{{- end -}}
{{- end }}

{{- define "defender.validate" -}}
{{- /* The webhooks never judge Defender's own namespace, so a core
namespace there would lose its protection (and a plain `helm install`
without -n lands in default). */ -}}
{{- $namespace := include "defender.namespace" . -}}
{{- if has $namespace (list "kube-system" "kube-public" "kube-node-lease" "default") -}}
{{- fail (printf "Defender's namespace is %q, a core namespace: the webhooks never judge Defender's own namespace, so %s would lose its protection. Install into a namespace of its own: helm install defender charts/defender -n defender-system --create-namespace" $namespace $namespace) -}}
{{- end -}}
{{- $sources := list "generated" "certManager" "existingSecret" -}}
{{- if not (has .Values.certificates.source $sources) -}}
{{- fail (printf "certificates.source is %q; use one of %s" .Values.certificates.source (join ", " $sources)) -}}
{{- end -}}
{{- if and .Values.policies.replaceDefaults (not .Values.policies.files) (not .Values.policies.existingConfigMap) -}}
{{- fail "policies.replaceDefaults is true but policies.files is empty: the set would hold no policies" -}}
{{- end -}}
{{- end }}

{{/*
The generated CA and serving certificate (certificates.source generated), as
base64: ca, crt, key, and caBundle (what the webhooks trust). Made once per
render and kept in .Values, so the Secret and the webhooks agree. An install
or upgrade that finds Secret defender-tls complete reuses it (lookup), so
upgrades never rotate by accident; `renew` makes a new pair and trusts the
old CA and the new one until the next upgrade.
*/}}
{{- define "defender.generatedTLS" -}}
{{- if not (hasKey .Values "defenderGeneratedTLS") -}}
{{- $ns := include "defender.namespace" . -}}
{{- $existing := (lookup "v1" "Secret" $ns "defender-tls").data | default dict -}}
{{- $complete := and (get $existing "tls.crt") (get $existing "tls.key") (get $existing "ca.crt") -}}
{{- $tls := dict -}}
{{- if and $complete (not .Values.certificates.generated.renew) -}}
{{- $tls = dict "ca" (get $existing "ca.crt") "crt" (get $existing "tls.crt") "key" (get $existing "tls.key") "caBundle" (get $existing "ca.crt") -}}
{{- else -}}
{{- $service := printf "defender.%s.svc" $ns -}}
{{- $ca := genCA "defender-ca" 3650 -}}
{{- $cert := genSignedCert $service nil (list $service (printf "%s.cluster.local" $service)) (int .Values.certificates.generated.days) $ca -}}
{{- $bundle := $ca.Cert -}}
{{- if $complete -}}
{{- $bundle = printf "%s\n%s" (b64dec (get $existing "ca.crt") | trim) $ca.Cert -}}
{{- end -}}
{{- $tls = dict "ca" (b64enc $ca.Cert) "crt" (b64enc $cert.Cert) "key" (b64enc $cert.Key) "caBundle" (b64enc $bundle) -}}
{{- end -}}
{{- $_ := set .Values "defenderGeneratedTLS" $tls -}}
{{- end -}}
{{- toYaml .Values.defenderGeneratedTLS -}}
{{- end }}

{{/* The webhooks' caBundle (base64 PEM), or "" where cainjector fills it in. */}}
{{- define "defender.caBundle" -}}
{{- $source := .Values.certificates.source -}}
{{- if eq $source "generated" -}}
{{- (include "defender.generatedTLS" . | fromYaml).caBundle -}}
{{- else if eq $source "existingSecret" -}}
{{- $ns := include "defender.namespace" . -}}
{{- $secret := include "defender.tlsSecret" . -}}
{{- $found := get ((lookup "v1" "Secret" $ns $secret).data | default dict) "ca.crt" -}}
{{- .Values.certificates.existingSecret.caBundle | default $found | required (printf "certificates.existingSecret.caBundle: give the base64 of the CA that signed Secret %s/%s (or create the Secret, with ca.crt, before installing)" $ns $secret) -}}
{{- end -}}
{{- end }}

{{/* How the API server reaches Defender: its Service, or webhooks.url. */}}
{{- define "defender.clientConfig" -}}
{{- if .Values.webhooks.url }}
url: {{ .Values.webhooks.url | quote }}
{{- else }}
service:
  name: defender
  namespace: {{ include "defender.namespace" . }}
  path: /validate
  port: 443
{{- end }}
{{- with include "defender.caBundle" . }}
caBundle: {{ . }}
{{- end }}
{{- end }}

{{/*
failurePolicy and timeoutSeconds of one webhook, checked: (list $ "namespaces").
*/}}
{{- define "defender.webhookSettings" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $hook := get $root.Values.webhooks $key | default dict -}}
{{- if not (has $hook.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail (printf "webhooks.%s.failurePolicy is %v; use Fail or Ignore" $key $hook.failurePolicy) -}}
{{- end -}}
{{- $timeout := int ($hook.timeoutSeconds | default 0) -}}
{{- $floor := int $root.Values.server.requestTimeoutSeconds -}}
{{- if or (gt $timeout 30) (le $timeout $floor) -}}
{{- fail (printf "webhooks.%s.timeoutSeconds is %v; the API server takes 1 to 30, and it must exceed server.requestTimeoutSeconds (%d) so Defender answers before the API server gives up" $key $hook.timeoutSeconds $floor) -}}
{{- end -}}
timeoutSeconds: {{ $timeout }}
failurePolicy: {{ $hook.failurePolicy }}
{{- end }}

{{/*
The webhooks of webhooks.generated (`defender webhook-config` output), with
how Defender is reached, failurePolicy and timeoutSeconds from values.
*/}}
{{- define "defender.generatedWebhooks" -}}
{{- $generated := fromYaml .Values.webhooks.generated -}}
{{- if hasKey $generated "Error" -}}
{{- fail (printf "webhooks.generated is not YAML: %s" $generated.Error) -}}
{{- end -}}
{{- if or (ne ($generated.kind | default "") "ValidatingWebhookConfiguration") (not $generated.webhooks) -}}
{{- fail "webhooks.generated: expected the ValidatingWebhookConfiguration `defender webhook-config` prints, with webhooks" -}}
{{- end -}}
{{- $ns := include "defender.namespace" . -}}
{{- $keys := dict "namespaces.defender.io" "namespaces" "deletions.defender.io" "deletions" "pod-deletions.defender.io" "podDeletions" "ingress-hosts.defender.io" "ingressHosts" "delete-protection.defender.io" "deleteProtection" -}}
{{- $webhooks := list -}}
{{- range $webhook := $generated.webhooks -}}
{{- $hook := deepCopy $webhook -}}
{{- $_ := set $hook "clientConfig" (include "defender.clientConfig" $ | fromYaml) -}}
{{- with get $keys ($hook.name | default "") -}}
{{- $_ := set $hook "timeoutSeconds" (include "defender.webhookSettings" (list $ .) | fromYaml).timeoutSeconds -}}
{{- $_ := set $hook "failurePolicy" (include "defender.webhookSettings" (list $ .) | fromYaml).failurePolicy -}}
{{- end -}}
{{- range $expression := (($hook.namespaceSelector | default dict).matchExpressions | default list) -}}
{{- if and (eq $expression.key "kubernetes.io/metadata.name") (eq $expression.operator "NotIn") (not (has $ns $expression.values)) -}}
{{- fail (printf "webhooks.generated: webhook %s does not exclude namespace %s; generate it with `defender webhook-config --namespace %s`" $hook.name $ns $ns) -}}
{{- end -}}
{{- end -}}
{{- $webhooks = append $webhooks $hook -}}
{{- end -}}
{{- toYaml $webhooks -}}
{{- end }}
