{{- define "hitl.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hitl.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hitl.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Worker processes: as set, else the CPU request rounded up (at least one). */}}
{{- define "hitl.workers" -}}
{{- if gt (int .Values.workers) 0 -}}
{{- .Values.workers -}}
{{- else -}}
{{- $cpu := toString (dig "requests" "cpu" "1" (.Values.resources | default dict)) -}}
{{- $cores := 1.0 -}}
{{- if hasSuffix "m" $cpu -}}
{{- $cores = divf (trimSuffix "m" $cpu | float64) 1000 -}}
{{- else -}}
{{- $cores = float64 $cpu -}}
{{- end -}}
{{- max 1 (ceil $cores | int) -}}
{{- end -}}
{{- end -}}

{{/* SQLite is one file on one volume: exactly one replica, whatever was asked. */}}
{{- define "hitl.replicas" -}}
{{- if eq .Values.store.mode "sqlite" -}}1{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end -}}
