{{/*
The sidecar's settings: the defaults below, overridden by what the including chart passes as
"config" (usually its .Values.kprof). Every other template of this chart reads them through
"kprof-sidecar.settings", so a value left out in the including chart gets the same default
everywhere.
*/}}
{{- define "kprof-sidecar.defaults" -}}
image:
  repository: kprof/kprof
  tag: "0.1.0"
  pullPolicy: IfNotPresent
# The ConfigMap holding config.yaml (a ProfilingConfig spec). Empty: "<release>-kprof", as
# created by "kprof-sidecar.configMap".
configMapName: ""
# The ProfilingConfig spec written to that ConfigMap. No selector is needed: the sidecar profiles
# its own pod's app container.
spec:
  thresholds:
    cpuThresholdPercent: 80
    memoryThresholdPercent: 90
  profileTypes: [heap, cpu, goroutine]
# Where the app serves pprof, published as the profiling.io/* pod annotations by
# "kprof-sidecar.podAnnotations"; the sidecar targets http://127.0.0.1:<port>.
pprof:
  port: 6060
  path: /debug/pprof
# A regular expression matched against the app's command line to find its process in the shared
# process namespace. Empty: the first process that is neither the pause process nor the sidecar.
appProcess: ""
healthPort: 8082
logLevel: info
# Empty: the region from the default AWS credential chain.
awsRegion: ""
tracing:
  otlpEndpoint: ""
  protocol: http/protobuf
# Size limit of the emptyDir at /var/lib/kprof (spool and local profiles).
storageSizeLimit: 512Mi
resources:
  requests:
    cpu: 10m
    memory: 32Mi
  limits:
    memory: 128Mi
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
extraEnv: []
extraArgs: []
{{- end }}

{{/*
The merged settings as JSON; argument: the including chart's config dict (may be nil). Maps are
merged key by key, except spec: a spec given by the chart replaces the default one whole, so that
leaving thresholds out of it really means no thresholds.
*/}}
{{- define "kprof-sidecar.settings" -}}
{{- $given := deepCopy (default (dict) .) }}
{{- $settings := mergeOverwrite (include "kprof-sidecar.defaults" . | fromYaml) $given }}
{{- if hasKey $given "spec" }}
{{- $_ := set $settings "spec" $given.spec }}
{{- end }}
{{- toJson $settings }}
{{- end }}

{{/* The ConfigMap's name; argument: (dict "config" ... "root" .). */}}
{{- define "kprof-sidecar.configMapName" -}}
{{- $settings := include "kprof-sidecar.settings" .config | fromJson }}
{{- default (printf "%s-kprof" .root.Release.Name) $settings.configMapName | trunc 63 | trimSuffix "-" }}
{{- end }}
