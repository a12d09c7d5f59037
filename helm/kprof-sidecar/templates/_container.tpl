{{/*
The kprof sidecar container, as one item of a pod's containers list.

  containers:
    - name: app
      ...
    {{- include "kprof-sidecar.container" (dict "appContainer" "app" "config" .Values.kprof "root" .) | nindent 4 }}

appContainer: the name of the container to profile (its CPU and memory requests and limits reach
the sidecar through the downward API). config: overrides of the defaults in _config.tpl. root:
the including chart's top-level context.

The sidecar makes no Kubernetes API calls: everything it knows about its pod comes from the
downward API (environment and the podinfo files) and from its config file.
*/}}
{{- define "kprof-sidecar.container" -}}
{{- if not .appContainer }}
{{- fail "kprof-sidecar.container: pass appContainer, the name of the container to profile" }}
{{- end }}
{{- if not .root }}
{{- fail "kprof-sidecar.container: pass root, the chart's top-level context (.)" }}
{{- end }}
{{- $s := include "kprof-sidecar.settings" .config | fromJson -}}
- name: kprof-sidecar
  image: "{{ $s.image.repository }}:{{ $s.image.tag }}"
  imagePullPolicy: {{ $s.image.pullPolicy }}
  args:
    - sidecar
    - --config=/etc/kprof/config.yaml
    - --app-container={{ .appContainer }}
    - --health-addr=:{{ int $s.healthPort }}
    - --local-dir=/var/lib/kprof/profiles
    - --spool-dir=/var/lib/kprof/spool
    - --log-level={{ $s.logLevel }}
    {{- with $s.appProcess }}
    - --app-process={{ . }}
    {{- end }}
    {{- range $s.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: KPROF_POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: KPROF_POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: KPROF_POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: KPROF_POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    - name: KPROF_APP_CONTAINER
      value: {{ .appContainer | quote }}
    # The app container's requests and limits: CPU in millicores, memory in bytes. A limit that is
    # not set reads as the node's allocatable amount.
    - name: KPROF_APP_CPU_REQUEST
      valueFrom:
        resourceFieldRef:
          containerName: {{ .appContainer }}
          resource: requests.cpu
          divisor: 1m
    - name: KPROF_APP_CPU_LIMIT
      valueFrom:
        resourceFieldRef:
          containerName: {{ .appContainer }}
          resource: limits.cpu
          divisor: 1m
    - name: KPROF_APP_MEMORY_REQUEST
      valueFrom:
        resourceFieldRef:
          containerName: {{ .appContainer }}
          resource: requests.memory
          divisor: "1"
    - name: KPROF_APP_MEMORY_LIMIT
      valueFrom:
        resourceFieldRef:
          containerName: {{ .appContainer }}
          resource: limits.memory
          divisor: "1"
    - name: KPROF_CONFIG_FILE
      value: /etc/kprof/config.yaml
    - name: KPROF_PODINFO_DIR
      value: /etc/kprof/podinfo
    - name: KPROF_SPOOL_DIR
      value: /var/lib/kprof/spool
    - name: KPROF_LOCAL_DIR
      value: /var/lib/kprof/profiles
    - name: PYTHONDONTWRITEBYTECODE
      value: "1"
    - name: HOME
      value: /tmp
    {{- with $s.awsRegion }}
    - name: AWS_REGION
      value: {{ . | quote }}
    {{- end }}
    {{- with $s.tracing.otlpEndpoint }}
    - name: OTEL_TRACES_EXPORTER
      value: otlp
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ . | quote }}
    - name: OTEL_EXPORTER_OTLP_PROTOCOL
      value: {{ $s.tracing.protocol | quote }}
    - name: OTEL_SERVICE_NAME
      value: kprof-sidecar
    {{- end }}
    {{- with $s.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: kprof-health
      containerPort: {{ int $s.healthPort }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /healthz
      port: kprof-health
    initialDelaySeconds: 5
    periodSeconds: 20
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    {{- toYaml $s.securityContext | nindent 4 }}
  volumeMounts:
    - name: kprof-config
      mountPath: /etc/kprof
      readOnly: true
    - name: kprof-data
      mountPath: /var/lib/kprof
    - name: kprof-tmp
      mountPath: /tmp
{{- end }}
