package sinks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/otlp"
)

func init() { Register("otlp", newOTLPSink) }

// OTLPSink sends batches as OTLP/HTTP log export requests (protobuf or JSON) to an
// OpenTelemetry Collector or any OTLP backend, one request per batch, records grouped by
// resource (their identity: host, file or container).
type OTLPSink struct {
	url, display string
	contentType  string
	json         bool
	scope        otlp.ScopeLogs // name and version of the scope the records are sent under
	static       []otlp.KV      // resource_attributes: added where the identity has none
	levelFields  []string
	t            *transport
}

var _ Sink = (*OTLPSink)(nil)

type otlpOptions struct {
	URL                string            `yaml:"url"`
	Encoding           string            `yaml:"encoding"`
	ResourceAttributes map[string]string `yaml:"resource_attributes"`
	LevelFields        []string          `yaml:"level_fields"`
	Transport          transportOptions  `yaml:",inline"`
}

// otlpLevelFields are the fields a severity is read from by default: what the json and
// logfmt steps make of the usual loggers' output.
var otlpLevelFields = []string{"level", "severity", "lvl", "loglevel"}

func newOTLPSink(_ string, opts config.Options) (Sink, error) {
	var o otlpOptions
	if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
		return nil, err
	}
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	s := &OTLPSink{url: u.String(), levelFields: o.LevelFields, scope: otlp.ScopeLogs{Name: "logcap"}}
	// The OTLP/HTTP convention (OTEL_EXPORTER_OTLP_ENDPOINT): a base URL gets /v1/logs; a
	// URL that already names the logs path is used as it is.
	if !strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1/logs") {
		s.url = joinURL(u, "/v1/logs")
	}
	s.display = config.MaskURL(s.url)
	switch o.Encoding {
	case "", "protobuf":
		s.contentType = "application/x-protobuf"
	case "json":
		s.contentType, s.json = "application/json", true
	default:
		return nil, fmt.Errorf("encoding: want protobuf or json, got %q", o.Encoding)
	}
	if s.levelFields == nil {
		s.levelFields = otlpLevelFields
	}
	if _, ok := o.ResourceAttributes[""]; ok {
		return nil, errors.New("resource_attributes: empty key")
	}
	s.static = otlp.FromMap(toAnyMap(o.ResourceAttributes), nil)
	if s.t, err = newTransport(o.Transport, false); err != nil {
		return nil, err
	}
	return s, nil
}

func toAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// build groups the batch by resource and scope, in the order they first appear.
func (s *OTLPSink) build(batch []Record) *otlp.Logs {
	l := &otlp.Logs{}
	type place struct{ res, scope int }
	places := map[string]place{}
	resources := map[string]int{}
	var lastRT string
	var readTime time.Time
	for i := range batch {
		r := &batch[i]
		resKey, scope := s.groupKey(r)
		key := resKey + "\x00" + scope.Name + "\x00" + scope.Version
		p, ok := places[key]
		if !ok {
			if p.res, ok = resources[resKey]; !ok {
				l.Resources = append(l.Resources, otlp.ResourceLogs{Attrs: otlpResource(r, s.static)})
				p.res = len(l.Resources) - 1
				resources[resKey] = p.res
			}
			res := &l.Resources[p.res]
			res.Scopes = append(res.Scopes, scope)
			p.scope = len(res.Scopes) - 1
			places[key] = p
		}
		if rt := header(r.Header, HdrReadTime); rt != lastRT {
			lastRT = rt
			readTime, _ = time.Parse(time.RFC3339Nano, rt)
		}
		sc := &l.Resources[p.res].Scopes[p.scope]
		sc.Records = append(sc.Records, s.otlpRecord(r, readTime))
	}
	return l
}

// groupKey is what identifies the record's resource, and the record's scope.
func (s *OTLPSink) groupKey(r *Record) (string, otlp.ScopeLogs) {
	var res string
	if m, ok := r.Fields[FieldResource].(map[string]any); ok {
		res = "R" + string(otlp.AppendProto(nil, &otlp.Logs{Resources: []otlp.ResourceLogs{{Attrs: otlp.FromMap(m, nil)}}}))
	} else {
		res = strings.Join([]string{"I", r.Kind, r.Host, r.Source, header(r.Header, HdrContainer), header(r.Header, HdrImage)}, "\x00")
	}
	scope := s.scope
	if m, ok := r.Fields[FieldScope].(map[string]any); ok {
		scope.Name, _ = m["name"].(string)
		scope.Version, _ = m["version"].(string)
	}
	return res, scope
}

// Write sends the batch in one export request. A partial success (the receiver rejected
// some records) fails every record of the request permanently with the receiver's reason:
// OTLP does not say which records it rejected, and sending the request again would
// duplicate the ones it took, so the messages go to dead letters where the rejected ones
// can be found.
func (s *OTLPSink) Write(ctx context.Context, batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	l := s.build(batch)
	var body []byte
	if s.json {
		var err error
		if body, err = otlp.AppendJSON(nil, l); err != nil {
			return Permanent(fmt.Errorf("otlp %s: %w", s.display, err))
		}
	} else {
		body = otlp.AppendProto(make([]byte, 0, len(batch)*256), l)
	}
	r, err := s.t.do(ctx, http.MethodPost, s.url, s.contentType, body, nil)
	if err != nil {
		return fmt.Errorf("otlp: POST %s: %w", s.display, err)
	}
	if err := statusError(r, time.Now()); err != nil {
		return fmt.Errorf("otlp: POST %s: %w", s.display, err)
	}
	ps, err := s.decodeResponse(r)
	if err != nil {
		// The records were accepted (2xx): an answer we cannot read is not a reason to send
		// them again.
		return nil
	}
	if ps.Rejected <= 0 {
		return nil
	}
	cause := Permanent(fmt.Errorf("otlp %s: the receiver rejected %d of the request's %d records (partial success; it does not say which): %s",
		s.display, ps.Rejected, len(batch), ps.Message))
	failed := make(map[int]error, len(batch))
	for i := range batch {
		failed[i] = cause
	}
	return &PartialError{Failed: failed}
}

func (s *OTLPSink) decodeResponse(r *response) (otlp.PartialSuccess, error) {
	if strings.Contains(r.header.Get("Content-Type"), "json") {
		return otlp.DecodeJSONResponse(r.body)
	}
	return otlp.DecodeResponse(r.body)
}

// Check posts an empty export request: a receiver that is up answers it with 200 (and
// stores nothing); 429, 502, 503 and 504 or no answer mean down.
func (s *OTLPSink) Check(ctx context.Context) error {
	body := []byte{}
	if s.json {
		body = []byte("{}")
	}
	r, err := s.t.do(ctx, http.MethodPost, s.url, s.contentType, body, nil)
	if err != nil {
		return fmt.Errorf("otlp: check: POST %s: %w", s.display, err)
	}
	if destinationDown(r.status) {
		return fmt.Errorf("otlp: check: POST %s: status %d: %s", s.display, r.status, snippet(r.body))
	}
	return nil
}

// Close releases the sink's idle connections.
func (s *OTLPSink) Close() error {
	s.t.close()
	return nil
}
