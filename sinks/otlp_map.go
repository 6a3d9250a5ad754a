package sinks

import (
	"encoding/hex"
	"encoding/json"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/logcap/logcap/otlp"
)

// Chunk headers the otlp sink reads: streams' names (sinks do not import streams;
// delivery's TestHeaderNames checks they agree).
const (
	HdrReadTime  = "Logcap-Read-Time"
	HdrContainer = "Logcap-Container"
	HdrImage     = "Logcap-Image"
)

// Field names with a meaning in OTLP: what the otlp source stores besides the log record's
// attributes, and what the otlp sink maps back instead of sending as attributes.
const (
	FieldResource       = "resource"
	FieldScope          = "scope"
	FieldTraceID        = "trace_id"
	FieldSpanID         = "span_id"
	FieldSeverityText   = "severity_text"
	FieldSeverityNumber = "severity_number"
	FieldEventName      = "event_name"
	FieldFlags          = "flags"
)

// fieldKubernetes is the pod identity a kubernetes source's entries carry
// ({namespace, pod, pod_uid, container, restart}): resource attributes, not record ones.
const fieldKubernetes = "kubernetes"

func otlpReserved(k string) bool {
	switch k {
	case FieldResource, FieldScope, FieldTraceID, FieldSpanID, FieldSeverityText, FieldSeverityNumber, FieldEventName, FieldFlags, fieldKubernetes:
		return true
	}
	return false
}

// otlpResource is the resource attributes of a record: its identity under the semantic
// conventions (host.name; log.file.path and log.file.name, or container.name, container.id
// and container.image.name; k8s.* from a Kubernetes log path), or, for an entry the otlp
// source received, the resource it came with; then the sink's static attributes where not
// set.
func otlpResource(r *Record, static []otlp.KV) []otlp.KV {
	var attrs []otlp.KV
	if m, ok := r.Fields[FieldResource].(map[string]any); ok {
		attrs = otlp.FromMap(m, nil)
	} else {
		attrs = identityAttrs(r)
	}
	for _, kv := range static {
		if _, ok := otlp.Lookup(attrs, kv.Key); !ok {
			attrs = append(attrs, kv)
		}
	}
	return attrs
}

func identityAttrs(r *Record) []otlp.KV {
	attrs := make([]otlp.KV, 0, 6)
	if r.Host != "" {
		attrs = append(attrs, otlp.KV{Key: "host.name", Value: r.Host})
	}
	switch r.Kind {
	case "file":
		attrs = append(attrs, otlp.KV{Key: "log.file.path", Value: r.Source}, otlp.KV{Key: "log.file.name", Value: path.Base(r.Source)})
		attrs = append(attrs, k8sAttrs(r.Source)...)
	case "kubernetes":
		attrs = append(attrs, podAttrs(r.Fields)...)
	case "docker":
		attrs = append(attrs, otlp.KV{Key: "container.name", Value: r.Source})
		if id := header(r.Header, HdrContainer); id != "" {
			attrs = append(attrs, otlp.KV{Key: "container.id", Value: id})
		}
		if img := header(r.Header, HdrImage); img != "" {
			attrs = append(attrs, otlp.KV{Key: "container.image.name", Value: img})
		}
	}
	return attrs
}

// k8sAttrs reads the Kubernetes identity from a kubelet log path:
// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log, or the
// /var/log/containers/<pod>_<namespace>_<container>-<id>.log symlinks.
func k8sAttrs(p string) []otlp.KV {
	if rest, ok := strings.CutPrefix(p, "/var/log/pods/"); ok {
		parts := strings.Split(rest, "/")
		ids := strings.SplitN(parts[0], "_", 3)
		if len(parts) != 3 || len(ids) != 3 {
			return nil
		}
		return []otlp.KV{{Key: "k8s.namespace.name", Value: ids[0]}, {Key: "k8s.pod.name", Value: ids[1]},
			{Key: "k8s.pod.uid", Value: ids[2]}, {Key: "k8s.container.name", Value: parts[1]}}
	}
	if base, ok := strings.CutPrefix(p, "/var/log/containers/"); ok && !strings.Contains(base, "/") {
		base = strings.TrimSuffix(base, ".log")
		ids := strings.SplitN(base, "_", 3)
		dash := strings.LastIndexByte(base, '-')
		if len(ids) != 3 || dash < 0 {
			return nil
		}
		cname := strings.TrimSuffix(ids[2], base[dash:])
		return []otlp.KV{{Key: "k8s.pod.name", Value: ids[0]}, {Key: "k8s.namespace.name", Value: ids[1]},
			{Key: "k8s.container.name", Value: cname}, {Key: "container.id", Value: base[dash+1:]}}
	}
	return nil
}

// podAttrs maps the kubernetes source's pod identity to the k8s.* semantic conventions.
func podAttrs(fields map[string]any) []otlp.KV {
	pod, _ := fields[fieldKubernetes].(map[string]any)
	var attrs []otlp.KV
	for _, m := range []struct{ field, attr string }{
		{"namespace", "k8s.namespace.name"}, {"pod", "k8s.pod.name"}, {"pod_uid", "k8s.pod.uid"}, {"container", "k8s.container.name"},
	} {
		if v, ok := pod[m.field].(string); ok && v != "" {
			attrs = append(attrs, otlp.KV{Key: m.attr, Value: v})
		}
	}
	if v, ok := pod["restart"].(string); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			attrs = append(attrs, otlp.KV{Key: "k8s.container.restart_count", Value: n})
		}
	}
	return attrs
}

func header(h map[string][]string, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// otlpRecord maps one record: body = the message, time = the entry's time, observed time =
// when logcap read it (the chunk's read time; the entry's time when not known), severity from
// a parsed level field, the other fields as attributes (a container's stream as
// log.iostream).
func (s *OTLPSink) otlpRecord(r *Record, readTime time.Time) otlp.Record {
	out := otlp.Record{Body: r.Message}
	if !r.Time.IsZero() {
		out.Time = uint64(r.Time.UnixNano())
	}
	if readTime.IsZero() {
		readTime = r.Time
	}
	if !readTime.IsZero() {
		out.Observed = uint64(readTime.UnixNano())
	}
	out.SeverityNumber, out.SeverityText = s.severity(r.Fields)
	if len(r.Fields) > 0 {
		out.Attrs = otlp.FromMap(r.Fields, otlpReserved)
		out.TraceID = hexField(r.Fields[FieldTraceID], 16)
		out.SpanID = hexField(r.Fields[FieldSpanID], 8)
		// A trace_id or span_id that is not an id stays an attribute, not lost.
		for k, id := range map[string][]byte{FieldTraceID: out.TraceID, FieldSpanID: out.SpanID} {
			if v, ok := r.Fields[k]; ok && id == nil {
				out.Attrs = append(out.Attrs, otlp.KV{Key: k, Value: otlp.Normalize(v)})
			}
		}
		out.EventName, _ = r.Fields[FieldEventName].(string)
		if f, ok := intField(r.Fields[FieldFlags]); ok {
			out.Flags = uint32(f)
		}
	}
	if r.Entry.Stream != "" { // a container's stdout or stderr (r.Stream is the JetStream stream)
		out.Attrs = append(out.Attrs, otlp.KV{Key: "log.iostream", Value: r.Entry.Stream})
	}
	return out
}

// severity is the record's severity: severity_number and severity_text fields (an entry the
// otlp source received) or the first of the sink's level fields that holds a string.
func (s *OTLPSink) severity(fields map[string]any) (int32, string) {
	if fields == nil {
		return 0, ""
	}
	text, _ := fields[FieldSeverityText].(string)
	if n, ok := intField(fields[FieldSeverityNumber]); ok && n > 0 && n <= 24 {
		return int32(n), text
	}
	if text == "" {
		for _, k := range s.levelFields {
			if v, ok := fields[k].(string); ok && v != "" {
				text = v
				break
			}
		}
	}
	return SeverityNumber(text), text
}

// SeverityNumber maps a level name (any case) to the OpenTelemetry severity number: the
// names of syslog, log4j, zap, logrus and Python's logging; 0 when unknown.
func SeverityNumber(level string) int32 {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "trace", "finest", "finer":
		return otlp.SeverityTrace
	case "debug", "dbg", "fine", "config":
		return otlp.SeverityDebug
	case "info", "information", "informational", "inf":
		return otlp.SeverityInfo
	case "notice":
		return otlp.SeverityInfo + 1
	case "warn", "warning", "wrn":
		return otlp.SeverityWarn
	case "error", "err", "eror", "severe":
		return otlp.SeverityError
	case "crit", "critical":
		return otlp.SeverityFatal - 1
	case "fatal", "panic", "dpanic", "alert", "emerg", "emergency":
		return otlp.SeverityFatal
	}
	return 0
}

func intField(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case int:
		return int64(t), true
	case float64:
		return int64(t), t == float64(int64(t))
	case json.Number:
		i, err := t.Int64()
		return i, err == nil
	}
	return 0, false
}

// hexField decodes a trace or span id field of n bytes; anything else is not an id.
func hexField(v any, n int) []byte {
	s, ok := v.(string)
	if !ok || len(s) != 2*n {
		return nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}
