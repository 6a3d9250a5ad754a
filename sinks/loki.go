package sinks

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

func init() { Register("loki", newLokiSink) }

// LokiSink pushes batches to Loki's push API, one stream per distinct label set.
type LokiSink struct {
	pushURL  string
	readyURL string
	display  string // the URL configured, for per-record errors: secrets masked
	// pushShow and readyShow are the URLs requested, for errors: secrets masked.
	pushShow, readyShow string
	tenant              string
	asJSON              bool        // line_format json
	pushJSON            bool        // encoding json: the push in JSON, gzip; else protobuf, snappy
	idName              string      // id_field: the structured metadata's name; "" when unset
	labels              []lokiLabel // sorted by name
	// originOnly: every label is constant or one of .Host .Kind .Source .Stream, so records
	// of one origin share their label set: it is rendered once per run of such records.
	originOnly bool
	maxVals    int
	t          *transport
	mu         sync.Mutex
	seenVals   map[string]map[string]struct{} // label name → values admitted so far
}

var _ Sink = (*LokiSink)(nil)

type lokiLabel struct {
	name string
	tmpl *template.Template
	// get, when set, renders the label without the template: a constant or an origin field
	// (what the default labels are); nil: the template runs.
	get func(e *event.Entry) string
}

// lokiFastLabel recognises the label templates that need no template engine.
func lokiFastLabel(src string) func(e *event.Entry) string {
	switch strings.TrimSpace(src) {
	case "{{.Host}}":
		return func(e *event.Entry) string { return e.Host }
	case "{{.Kind}}":
		return func(e *event.Entry) string { return e.Kind }
	case "{{.Source}}":
		return func(e *event.Entry) string { return e.Source }
	case "{{.Stream}}":
		return func(e *event.Entry) string { return e.Stream }
	}
	if !strings.Contains(src, "{{") {
		return func(*event.Entry) string { return src }
	}
	return nil
}

type lokiOptions struct {
	URL            string            `yaml:"url"`
	Labels         map[string]string `yaml:"labels"`
	MaxLabelValues int               `yaml:"max_label_values"`
	Tenant         string            `yaml:"tenant"`
	LineFormat     string            `yaml:"line_format"`
	Encoding       string            `yaml:"encoding"`
	IDField        string            `yaml:"id_field"`
	Transport      transportOptions  `yaml:",inline"`
}

// lokiDefaultLabels are few and bounded: the entry's origin, never its content.
var lokiDefaultLabels = map[string]string{
	"host":   "{{.Host}}",
	"kind":   "{{.Kind}}",
	"source": "{{.Source}}",
	"stream": "{{.Stream}}",
}

const (
	lokiOverflow = "_overflow"
	// lokiMaxLabelValueBytes is Loki's default limits_config.max_label_value_length.
	lokiMaxLabelValueBytes = 2048
)

var lokiLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func newLokiSink(_ string, opts config.Options) (Sink, error) {
	var o lokiOptions
	if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
		return nil, err
	}
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	s := &LokiSink{
		pushURL:  joinURL(u, "/loki/api/v1/push"),
		readyURL: joinURL(u, "/ready"),
		display:  config.MaskURL(u.String()),
		tenant:   o.Tenant,
		maxVals:  o.MaxLabelValues,
		seenVals: map[string]map[string]struct{}{},
	}
	s.pushShow, s.readyShow = config.MaskURL(s.pushURL), config.MaskURL(s.readyURL)
	switch o.LineFormat {
	case "", "message":
	case "json":
		s.asJSON = true
	default:
		return nil, fmt.Errorf("line_format: want message or json, got %q", o.LineFormat)
	}
	switch o.Encoding {
	case "", "protobuf":
	case "json":
		s.pushJSON = true
	default:
		return nil, fmt.Errorf("encoding: want protobuf or json, got %q", o.Encoding)
	}
	if o.IDField != "" {
		if _, err := idFieldKey(o.IDField); err != nil {
			return nil, err
		}
		if !lokiLabelName.MatchString(o.IDField) {
			return nil, fmt.Errorf("id_field: %q: want a Loki label name ([a-zA-Z_][a-zA-Z0-9_]*), e.g. logcap_id", o.IDField)
		}
		s.idName = o.IDField
	}
	if s.maxVals == 0 {
		s.maxVals = 1000
	}
	if s.maxVals < 0 {
		return nil, fmt.Errorf("max_label_values: must be positive, got %d", s.maxVals)
	}
	if strings.ContainsAny(o.Tenant, "\r\n\x00") {
		return nil, fmt.Errorf("tenant: contains a line break or NUL")
	}
	labels := o.Labels
	if labels == nil {
		labels = lokiDefaultLabels
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("labels: Loki needs at least one label")
	}
	for name, src := range labels {
		if !lokiLabelName.MatchString(name) || strings.HasPrefix(name, "__") {
			return nil, fmt.Errorf("labels.%s: invalid Loki label name (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", name)
		}
		tm, err := template.New(name).Option("missingkey=zero").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("labels.%s: %w", name, err)
		}
		s.labels = append(s.labels, lokiLabel{name: name, tmpl: tm, get: lokiFastLabel(src)})
	}
	s.originOnly = true
	for _, l := range s.labels {
		s.originOnly = s.originOnly && l.get != nil
	}
	sort.Slice(s.labels, func(i, j int) bool { return s.labels[i].name < s.labels[j].name })
	if s.t, err = newTransport(o.Transport, false); err != nil {
		return nil, err
	}
	return s, nil
}

// sanitizeLabelValue makes a rendered template a value Loki accepts and a human can read:
// valid UTF-8, no control characters (a newline in a label breaks LogQL selectors people
// type), no surrounding space, at most Loki's default length. It is idempotent.
func sanitizeLabelValue(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, v)
	v = strings.TrimSpace(v)
	if len(v) > lokiMaxLabelValueBytes {
		cut := lokiMaxLabelValueBytes
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = strings.TrimSpace(v[:cut])
	}
	return v
}

// renderLabels evaluates the label templates for one record. Labels that render empty are
// left out (Loki drops empty labels anyway).
func (s *LokiSink) renderLabels(r *Record, buf *bytes.Buffer) (map[string]string, error) {
	out := make(map[string]string, len(s.labels))
	for _, l := range s.labels {
		var v string
		if l.get != nil {
			v = l.get(&r.Entry)
		} else {
			buf.Reset()
			if err := l.tmpl.Execute(buf, &r.Entry); err != nil {
				return nil, fmt.Errorf("labels.%s: %w", l.name, err)
			}
			// text/template prints a missing map entry (index .Fields "x" on an entry
			// without x) as "<no value>": that is an absent label, not a value.
			v = strings.ReplaceAll(buf.String(), "<no value>", "")
		}
		if v = sanitizeLabelValue(v); v != "" {
			out[l.name] = v
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("labels: every label rendered empty; Loki needs at least one")
	}
	return out, nil
}

// admit applies max_label_values: a value beyond the first max seen for its label becomes
// "_overflow". The set lives as long as the sink (one process), so the limit bounds the
// streams this process creates, not the whole cluster's.
func (s *LokiSink) admit(labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range labels {
		seen := s.seenVals[k]
		if seen == nil {
			seen = map[string]struct{}{}
			s.seenVals[k] = seen
		}
		if _, ok := seen[v]; ok {
			continue
		}
		if len(seen) >= s.maxVals {
			labels[k] = lokiOverflow
			continue
		}
		seen[v] = struct{}{}
	}
}

// buildPush groups the batch into streams (sortGroups orders them) and appends the request
// body to out: protobuf, or JSON with encoding: json.
func (s *LokiSink) buildPush(out []byte, batch []Record) ([]byte, map[int]error) {
	var bad map[int]error
	fail := func(i int, err error) {
		if bad == nil {
			bad = map[int]error{}
		}
		bad[i] = Permanent(fmt.Errorf("loki %s: %s: %w", s.display, batch[i].ID(), err))
	}
	p := pushBody{batch: batch, idKey: s.idName}
	groups := map[string]*lokiGroup{}
	var buf bytes.Buffer
	var last *lokiGroup // the group of the previous record, with originOnly labels
	for i := range batch {
		r := &batch[i]
		if r.Time.IsZero() {
			fail(i, fmt.Errorf("entry has no time"))
			continue
		}
		e := lokiEntry{ns: r.Time.UnixNano(), rec: i}
		if s.asJSON {
			var err error
			e.start = len(p.arena)
			if p.arena, err = appendEntryJSON(p.arena, &r.Entry, "", nil); err != nil {
				p.arena = p.arena[:e.start]
				fail(i, fmt.Errorf("encode: %w", err))
				continue
			}
			e.end = len(p.arena)
		}
		if last != nil && sameOrigin(&batch[last.entries[len(last.entries)-1].rec].Entry, &r.Entry) {
			last.entries = append(last.entries, e)
			continue
		}
		g, err := s.group(groups, r, &buf)
		if err != nil {
			fail(i, err)
			continue
		}
		g.entries = append(g.entries, e)
		if s.originOnly {
			last = g
		}
	}
	if len(groups) == 0 {
		return nil, bad
	}
	sorted := sortGroups(groups)
	out = slices.Grow(out, bodyEstimate(batch)+len(p.arena))
	if s.pushJSON {
		return p.appendJSON(out, sorted), bad
	}
	return p.appendProto(out, sorted), bad
}

// sameOrigin is whether two entries have the same host, kind, source and stream.
func sameOrigin(a, b *event.Entry) bool {
	return a.Source == b.Source && a.Host == b.Host && a.Kind == b.Kind && a.Stream == b.Stream
}

// group renders the record's labels, admits them (max_label_values) and returns the
// group of that label set.
func (s *LokiSink) group(groups map[string]*lokiGroup, r *Record, buf *bytes.Buffer) (*lokiGroup, error) {
	labels, err := s.renderLabels(r, buf)
	if err != nil {
		return nil, err
	}
	s.admit(labels)
	pairs := make([][2]string, 0, len(labels))
	for _, l := range s.labels {
		if v, ok := labels[l.name]; ok {
			pairs = append(pairs, [2]string{l.name, v})
		}
	}
	key := promLabels(pairs)
	g := groups[key]
	if g == nil {
		g = &lokiGroup{labels: key, pairs: pairs}
		groups[key] = g
	}
	return g, nil
}

// lokiRefusal names the reason when Loki refused entries for their timestamps: its
// validation errors say "entry out of order", "entry too far behind" or "... too old"
// (greater_than_max_sample_age). "" when the body says none of these.
func lokiRefusal(body []byte) string {
	b := strings.ToLower(string(body))
	for _, reason := range []string{"entry out of order", "entry too far behind", "too old", "greater_than_max_sample_age"} {
		if strings.Contains(b, reason) {
			return reason
		}
	}
	return ""
}

// lokiClassify turns Loki's answer into Write's result. Loki stores the entries of a push it
// accepts and reports the refused ones in a 400 body that does not say reliably which stream
// each came from, so a 400 classifies the whole batch: permanent (dead letters), with the
// reason. Retrying would not help: the same entries are refused again, and the accepted
// ones are already stored.
func lokiClassify(r *response, now time.Time) error {
	err := statusError(r, now)
	if err == nil || r.status != http.StatusBadRequest {
		return err
	}
	if reason := lokiRefusal(r.body); reason != "" {
		return Permanent(fmt.Errorf("Loki refused entries (%s), other entries of the batch may have been stored: %s", reason, snippet(r.body)))
	}
	return err
}

// Write pushes the batch in one request.
func (s *LokiSink) Write(ctx context.Context, batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	body, bad := s.buildPush((*bp)[:0], batch)
	keepBuffer(bp, body)
	if body == nil {
		return mergeFailures(len(batch), bad, nil)
	}
	var hdr http.Header
	if s.tenant != "" {
		hdr = http.Header{"X-Scope-Orgid": {s.tenant}}
	}
	var sendErr error
	var r *response
	var err error
	if s.pushJSON {
		r, err = s.t.do(ctx, http.MethodPost, s.pushURL, "application/json", body, hdr)
	} else {
		// Loki's protobuf push is snappy-compressed, without a Content-Encoding.
		r, err = s.t.send(ctx, http.MethodPost, s.pushURL, "application/x-protobuf", "", snappyBlock(body), hdr)
	}
	if err != nil {
		sendErr = fmt.Errorf("loki: POST %s: %w", s.pushShow, err)
	} else if err := lokiClassify(r, time.Now()); err != nil {
		sendErr = fmt.Errorf("loki: POST %s: %w", s.pushShow, err)
	}
	return mergeFailures(len(batch), bad, sendErr)
}

// Check asks Loki's /ready, which answers 503 while the ring is not ready to take writes.
func (s *LokiSink) Check(ctx context.Context) error {
	if err := s.t.probe(ctx, http.MethodGet, s.readyURL); err != nil {
		return fmt.Errorf("loki: ready: GET %s: %w", s.readyShow, err)
	}
	return nil
}

// Close releases the sink's idle connections.
func (s *LokiSink) Close() error {
	s.t.close()
	return nil
}
