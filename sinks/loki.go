package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/logcap/logcap/config"
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
	asJSON              bool
	labels              []lokiLabel // sorted by name
	maxVals             int
	t                   *transport
	mu                  sync.Mutex
	seenVals            map[string]map[string]struct{} // label name → values admitted so far
}

var _ Sink = (*LokiSink)(nil)

type lokiLabel struct {
	name string
	tmpl *template.Template
}

type lokiOptions struct {
	URL            string            `yaml:"url"`
	Labels         map[string]string `yaml:"labels"`
	MaxLabelValues int               `yaml:"max_label_values"`
	Tenant         string            `yaml:"tenant"`
	LineFormat     string            `yaml:"line_format"`
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
		s.labels = append(s.labels, lokiLabel{name: name, tmpl: tm})
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
		buf.Reset()
		if err := l.tmpl.Execute(buf, &r.Entry); err != nil {
			return nil, fmt.Errorf("labels.%s: %w", l.name, err)
		}
		// text/template prints a missing map entry (index .Fields "x" on an entry without
		// x) as "<no value>": that is an absent label, not a value.
		v := strings.ReplaceAll(buf.String(), "<no value>", "")
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

type lokiPush struct {
	Streams []lokiStream `json:"streams"`
}

type lokiStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

type lokiValue struct {
	ns   int64
	line string
}

// buildPush groups the batch into streams and sorts each stream's entries by time. The sort
// is stable, so entries with equal timestamps keep their batch order (stream sequence, then
// position in the chunk) and a redelivered batch produces the very same request.
func (s *LokiSink) buildPush(batch []Record) ([]byte, map[int]error) {
	var bad map[int]error
	fail := func(i int, err error) {
		if bad == nil {
			bad = map[int]error{}
		}
		bad[i] = Permanent(fmt.Errorf("loki %s: %s: %w", s.display, batch[i].ID(), err))
	}
	groups := map[string]*lokiGroup{}
	var key strings.Builder
	var buf bytes.Buffer
	for i := range batch {
		r := &batch[i]
		if r.Time.IsZero() {
			fail(i, fmt.Errorf("entry has no time"))
			continue
		}
		labels, err := s.renderLabels(r, &buf)
		if err != nil {
			fail(i, err)
			continue
		}
		line := r.Message
		if s.asJSON {
			b, err := json.Marshal(r.Entry)
			if err != nil {
				fail(i, fmt.Errorf("encode: %w", err))
				continue
			}
			line = string(b)
		}
		s.admit(labels)
		key.Reset()
		for _, l := range s.labels {
			if v, ok := labels[l.name]; ok {
				key.WriteString(l.name)
				key.WriteByte(0)
				key.WriteString(v)
				key.WriteByte(0)
			}
		}
		g := groups[key.String()]
		if g == nil {
			g = &lokiGroup{labels: labels}
			groups[key.String()] = g
		}
		g.values = append(g.values, lokiValue{ns: r.Time.UnixNano(), line: line})
	}
	if len(groups) == 0 {
		return nil, bad
	}
	body, err := json.Marshal(lokiPushOf(groups))
	if err != nil {
		// Only strings go in: cannot happen, but a batch must never be acked unsent.
		for i := range batch {
			if _, ok := bad[i]; !ok {
				fail(i, fmt.Errorf("encode push: %w", err))
			}
		}
		return nil, bad
	}
	return body, bad
}

// lokiGroup is the entries of one label set.
type lokiGroup struct {
	labels map[string]string
	values []lokiValue
}

// lokiPushOf orders the label sets (by key) and each one's entries (by time) into a push.
func lokiPushOf(groups map[string]*lokiGroup) lokiPush {
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	push := lokiPush{Streams: make([]lokiStream, 0, len(keys))}
	for _, k := range keys {
		g := groups[k]
		sort.SliceStable(g.values, func(i, j int) bool { return g.values[i].ns < g.values[j].ns })
		st := lokiStream{Stream: g.labels, Values: make([][2]string, len(g.values))}
		for i, v := range g.values {
			st.Values[i] = [2]string{strconv.FormatInt(v.ns, 10), v.line}
		}
		push.Streams = append(push.Streams, st)
	}
	return push
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
	body, bad := s.buildPush(batch)
	if body == nil {
		return mergeFailures(len(batch), bad, nil)
	}
	var hdr http.Header
	if s.tenant != "" {
		hdr = http.Header{"X-Scope-Orgid": {s.tenant}}
	}
	var sendErr error
	r, err := s.t.do(ctx, http.MethodPost, s.pushURL, "application/json", body, hdr)
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
