{{/*
What the pod around the sidecar needs, as items of the pod spec and its metadata.
*/}}

{{/*
Pod-level settings, placed among the pod spec's fields:

  spec:
    {{- include "kprof-sidecar.podSettings" . | nindent 6 }}

One shared process namespace lets the sidecar see the app's process (/proc/<pid>/stat and status
are world-readable, so no extra capability is needed, whatever uid the app runs as).
*/}}
{{- define "kprof-sidecar.podSettings" -}}
shareProcessNamespace: true
{{- end }}

{{/*
The sidecar's volumes, as items of the pod's volumes list:

  volumes:
    {{- include "kprof-sidecar.volumes" (dict "config" .Values.kprof "root" .) | nindent 8 }}

kprof-config projects the ConfigMap's config.yaml and the pod's labels and annotations
(podinfo/labels, podinfo/annotations) into /etc/kprof; kprof-data holds the spool and local
profiles; kprof-tmp is the only other writable place on a read-only root filesystem.
*/}}
{{- define "kprof-sidecar.volumes" -}}
{{- $s := include "kprof-sidecar.settings" .config | fromJson -}}
- name: kprof-config
  projected:
    sources:
      - configMap:
          name: {{ include "kprof-sidecar.configMapName" . }}
          items:
            - key: config.yaml
              path: config.yaml
      - downwardAPI:
          items:
            - path: podinfo/labels
              fieldRef:
                fieldPath: metadata.labels
            - path: podinfo/annotations
              fieldRef:
                fieldPath: metadata.annotations
- name: kprof-data
  {{- with $s.storageSizeLimit }}
  emptyDir:
    sizeLimit: {{ . }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: kprof-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/*
Pod annotations that opt the pod in and say where pprof is served, plus a checksum of the
config so that pods restart when it changes:

  metadata:
    annotations:
      {{- include "kprof-sidecar.podAnnotations" (dict "config" .Values.kprof "root" .) | nindent 8 }}
*/}}
{{- define "kprof-sidecar.podAnnotations" -}}
{{- $s := include "kprof-sidecar.settings" .config | fromJson -}}
profiling.io/enabled: "true"
profiling.io/port: {{ $s.pprof.port | toString | quote }}
profiling.io/path: {{ $s.pprof.path | quote }}
checksum/kprof-config: {{ toJson $s.spec | sha256sum }}
{{- end }}

{{/*
The ConfigMap with the sidecar's ProfilingConfig spec, a whole document of its own:

  # templates/kprof-config.yaml
  {{ include "kprof-sidecar.configMap" (dict "config" .Values.kprof "root" .) }}

Leave it out and set configMapName to use a ConfigMap you manage yourself (key config.yaml).
*/}}
{{- define "kprof-sidecar.configMap" -}}
{{- $s := include "kprof-sidecar.settings" .config | fromJson -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "kprof-sidecar.configMapName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    app.kubernetes.io/name: kprof-sidecar
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    app.kubernetes.io/managed-by: {{ .root.Release.Service }}
    app.kubernetes.io/part-of: kprof
    helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
data:
  config.yaml: |
    {{- toYaml $s.spec | nindent 4 }}
{{- end }}
