{{/*
Names and labels shared by every template of the kprof-operator chart.
*/}}

{{/* The chart's short name (nameOverride wins). */}}
{{- define "kprof-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: "<release>-<chart>", shortened when one already holds the other
(release "kprof" gives "kprof-operator", release "kprof-operator" stays as it is).
*/}}
{{- define "kprof-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "kprof-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name derived from the full name, e.g. (list . "jaeger"), kept within 63 characters. */}}
{{- define "kprof-operator.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "kprof-operator.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" }}
{{- end }}

{{- define "kprof-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "kprof-operator.labels" -}}
helm.sh/chart: {{ include "kprof-operator.chart" . }}
app.kubernetes.io/name: {{ include "kprof-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kprof
{{- end }}

{{/* What the operator's Deployment and Service select its pods by. */}}
{{- define "kprof-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kprof-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kprof-operator.jaegerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kprof-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: jaeger
{{- end }}

{{- define "kprof-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kprof-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kprof-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The transports the ClusterRole grants: the default one plus extraTransports, as a list. */}}
{{- define "kprof-operator.transports" -}}
{{- toJson (uniq (prepend .Values.extraTransports .Values.transport)) }}
{{- end }}

{{/* The OTLP endpoint the operator exports to: the user's, else the bundled Jaeger's, else empty. */}}
{{- define "kprof-operator.otlpEndpoint" -}}
{{- if .Values.tracing.otlpEndpoint }}
{{- .Values.tracing.otlpEndpoint }}
{{- else if .Values.tracing.jaeger.enabled }}
{{- $port := ternary 4317 4318 (eq .Values.tracing.protocol "grpc") }}
{{- printf "http://%s.%s.svc:%d" (include "kprof-operator.componentName" (list . "jaeger")) .Release.Namespace $port }}
{{- end }}
{{- end }}

{{- define "kprof-operator.claimName" -}}
{{- default (include "kprof-operator.componentName" (list . "data")) .Values.storage.persistence.existingClaim }}
{{- end }}

{{/* The Secret holding the Alertmanager receiver's bearer token: the user's, else the chart's. */}}
{{- define "kprof-operator.alertsTokenSecret" -}}
{{- if .Values.alerts.token.existingSecret }}
{{- .Values.alerts.token.existingSecret }}
{{- else if .Values.alerts.token.value }}
{{- include "kprof-operator.componentName" (list . "alerts-token") }}
{{- else }}
{{- fail "alerts.enabled needs the bearer token: alerts.token.existingSecret (a Secret of yours) or alerts.token.value" }}
{{- end }}
{{- end }}
