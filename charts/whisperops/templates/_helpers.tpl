{{/* Name of the chart. */}}
{{- define "whisperops.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "whisperops.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "whisperops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "whisperops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: whisperops
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "whisperops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "whisperops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "whisperops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "whisperops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image. */}}
{{- define "whisperops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The namespaces the operator watches in rbac.scope=namespaced, comma-separated (watchNamespaces, else
the release namespace); "" (every namespace) in cluster mode.
*/}}
{{- define "whisperops.watchNamespaces" -}}
{{- if eq (.Values.rbac.scope | default "cluster") "namespaced" -}}
{{- .Values.watchNamespaces | default (list .Release.Namespace) | join "," -}}
{{- end -}}
{{- end }}
