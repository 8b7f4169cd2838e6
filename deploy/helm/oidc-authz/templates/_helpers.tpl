{{/* Names and labels shared by every template. */}}
{{- define "oidc-authz.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "oidc-authz.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "oidc-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oidc-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "oidc-authz.labels" -}}
{{ include "oidc-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The Secret holding client_secret and session_keys (and redis_url). */}}
{{- define "oidc-authz.secretName" -}}
{{- default (include "oidc-authz.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Redis is used when a URL is given, in values or in a Secret of the user's. */}}
{{- define "oidc-authz.redisEnabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* oidc-authz's configuration: the user's `config` plus what the chart owns. */}}
{{- define "oidc-authz.config" -}}
{{- $owned := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.ports.grpc))
  "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin))
  "client_secret_file" "/run/secrets/oidc-authz/client_secret"
  "session_secret_file" "/run/secrets/oidc-authz/session_keys" }}
{{- if include "oidc-authz.redisEnabled" . }}
{{- $_ := set $owned "session_storage" "redis" }}
{{- end }}
{{- $config := mergeOverwrite (deepCopy .Values.config) $owned }}
{{- toYaml $config }}
{{- end }}
