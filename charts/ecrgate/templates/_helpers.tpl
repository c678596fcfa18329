{{/* The chart's name, cut to 63 characters (a DNS label). */}}
{{- define "ecrgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the prefix of every object it makes. */}}
{{- define "ecrgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ecrgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecrgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecrgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ecrgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ecrgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ecrgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "ecrgate.image" -}}
{{- $repo := required "image.repository is required: push the image `make image` builds to your registry (README, \"Container image\") and set image.repository to it" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt and tls.key. */}}
{{- define "ecrgate.tlsSecretName" -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.secretName -}}
{{- fail "tls: set either tls.secretName (an existing Secret) or tls.certManager.enabled (a Certificate the chart renders), not both" -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "ecrgate.fullname" .) -}}
{{- else if .Values.tls.secretName -}}
{{- .Values.tls.secretName -}}
{{- else -}}
{{- fail "tls: the team proxy serves pushes over TLS only; set tls.secretName to a kubernetes.io/tls Secret, or tls.certManager.enabled=true with tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- end -}}

{{/* The Service's DNS names, which the certificate always covers. */}}
{{- define "ecrgate.serviceDNSNames" -}}
{{- $svc := include "ecrgate.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/*
The configuration file: .Values.config plus the keys the chart owns
(listen, admin_listen, allow_remote, tls), which point at the pod's ports
and the mounted Secret.
*/}}
{{- define "ecrgate.configYAML" -}}
{{- $c := deepCopy .Values.config -}}
{{- if not (or $c.default_registry $c.routes) -}}
{{- fail "config.default_registry (or config.routes) is required: the ECR registry host names go to, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com" -}}
{{- end -}}
{{- range $k, $v := $c -}}
{{- if or (eq $v nil) (and (kindIs "string" $v) (eq $v "")) -}}
{{- $_ := unset $c $k -}}
{{- end -}}
{{- end -}}
{{- $_ := set $c "listen" (printf "0.0.0.0:%d" (int .Values.ports.registry)) -}}
{{- $_ := set $c "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) -}}
{{- $_ := set $c "allow_remote" true -}}
{{- $_ := set $c "tls" (dict "cert_file" "/etc/ecrgate/tls/tls.crt" "key_file" "/etc/ecrgate/tls/tls.key") -}}
{{- toYaml $c -}}
{{- end -}}
