package otlp

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/otlp"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

// Kind is the second token of the subjects the source publishes on:
// logs.otlp.<host>.<service.name>.
const Kind = "otlp"

// UnknownService is the source token of a resource without service.name, as the
// OpenTelemetry SDKs name such a service.
const UnknownService = "unknown_service"

// Entries maps an export request to entries, grouped by subject (host and service) in the
// order they first appear. An entry's host is the resource's host.name (else node), its
// source the resource's service.name, its time the record's time (else its observed time,
// else now), its message the body (a string as it is, any other value as JSON); its fields
// are the record's attributes, plus under reserved names what else OTLP carried: resource
// (the resource attributes), scope (name, version), trace_id and span_id (hex),
// severity_text, severity_number, event_name and flags. The otlp sink maps them back.
func Entries(l *otlp.Logs, node string, now time.Time) (subjects []string, groups [][]event.Entry) {
	index := map[string]int{}
	for i := range l.Resources {
		res := &l.Resources[i]
		host, service := identity(res, node)
		subj := subjectOf(host, service)
		gi, ok := index[subj]
		if !ok {
			gi = len(groups)
			index[subj] = gi
			subjects, groups = append(subjects, subj), append(groups, nil)
		}
		var resMap map[string]any
		if len(res.Attrs) > 0 {
			resMap = otlp.ToMap(res.Attrs)
		}
		for j := range res.Scopes {
			sc := &res.Scopes[j]
			for k := range sc.Records {
				e := entry(&sc.Records[k], host, service, now)
				if resMap != nil {
					e.Fields[sinks.FieldResource] = resMap
				}
				if sc.Name != "" || sc.Version != "" {
					e.Fields[sinks.FieldScope] = map[string]any{"name": sc.Name, "version": sc.Version}
				}
				groups[gi] = append(groups[gi], e)
			}
		}
	}
	return subjects, groups
}

// identity is a resource's host.name (else node) and service.name (else unknown_service).
func identity(res *otlp.ResourceLogs, node string) (host, service string) {
	host, service = node, UnknownService
	if v, ok := otlp.Lookup(res.Attrs, "host.name"); ok {
		if s, ok := v.(string); ok && s != "" {
			host = s
		}
	}
	if v, ok := otlp.Lookup(res.Attrs, "service.name"); ok {
		if s, ok := v.(string); ok && s != "" {
			service = s
		}
	}
	return host, service
}

func subjectOf(host, service string) string { return streams.SourceSubject(Kind, host, service) }

// entryTime is the record's time, else its observed time, else now.
func entryTime(r *otlp.Record, now time.Time) time.Time {
	switch {
	case r.Time != 0 && r.Time <= 1<<63-1:
		return time.Unix(0, int64(r.Time)).UTC()
	case r.Observed != 0 && r.Observed <= 1<<63-1:
		return time.Unix(0, int64(r.Observed)).UTC()
	}
	return now.UTC()
}

func entry(r *otlp.Record, host, service string, now time.Time) event.Entry {
	e := event.Entry{Host: host, Kind: Kind, Source: service, Message: otlp.String(r.Body), Time: entryTime(r, now)}
	e.Fields = make(map[string]any, len(r.Attrs)+4)
	for _, kv := range r.Attrs {
		e.Fields[kv.Key] = otlp.ToField(kv.Value)
	}
	if len(r.TraceID) > 0 {
		e.Fields[sinks.FieldTraceID] = hex.EncodeToString(r.TraceID)
	}
	if len(r.SpanID) > 0 {
		e.Fields[sinks.FieldSpanID] = hex.EncodeToString(r.SpanID)
	}
	if r.SeverityText != "" {
		e.Fields[sinks.FieldSeverityText] = r.SeverityText
	}
	if r.SeverityNumber != 0 {
		e.Fields[sinks.FieldSeverityNumber] = int64(r.SeverityNumber)
	}
	if r.EventName != "" {
		e.Fields[sinks.FieldEventName] = r.EventName
	}
	if r.Flags != 0 {
		e.Fields[sinks.FieldFlags] = int64(r.Flags)
	}
	return e
}

// Msgs packs a subject's entry lines into derived-format (NDJSON) messages of at most
// maxBytes each, with ids idPrefix:<n>. A line that alone is bigger than maxBytes cannot be
// stored: it is left out, and its index returned in tooBig.
func Msgs(subj, idPrefix string, lines [][]byte, readTime time.Time, maxBytes int) (out []*nats.Msg, tooBig []int) {
	var data []byte
	n := 0
	flush := func() {
		if n == 0 {
			return
		}
		m := nats.NewMsg(subj)
		m.Data = data
		m.Header.Set(streams.HdrMsgID, idPrefix+":"+strconv.Itoa(len(out)))
		m.Header.Set(streams.HdrFormat, streams.FormatNDJSON)
		m.Header.Set(streams.HdrLines, strconv.Itoa(n))
		m.Header.Set(streams.HdrReadTime, readTime.UTC().Format(time.RFC3339Nano))
		out = append(out, m)
		data, n = nil, 0
	}
	for i, l := range lines {
		if len(l) > maxBytes {
			tooBig = append(tooBig, i)
			continue
		}
		if len(data)+len(l) > maxBytes {
			flush()
		}
		data = append(data, l...)
		n++
	}
	flush()
	return out, tooBig
}
