package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

func init() { Register("elasticsearch", newESSink) }

// ElasticsearchSink writes batches with the _bulk API (Elasticsearch 7+, OpenSearch). Each
// document's _id is the record's ID, so a redelivered batch overwrites (mode index) or is
// refused as already there (mode data_stream): either way each entry is stored once.
type ElasticsearchSink struct {
	bulkURL string
	rootURL string
	display string // the URL configured, for per-record errors: secrets masked
	// bulkShow and rootShow are the URLs requested, for errors: secrets masked.
	bulkShow, rootShow string
	create             bool // data_stream mode: "create" actions
	index              *template.Template
	static             string // the index name when the template has no actions
	idKey              string // id_field as a quoted JSON key; "" when unset
	t                  *transport
}

var _ Sink = (*ElasticsearchSink)(nil)

type esOptions struct {
	URL       string           `yaml:"url"`
	Index     string           `yaml:"index"`
	Mode      string           `yaml:"mode"`
	IDField   string           `yaml:"id_field"`
	Transport transportOptions `yaml:",inline"`
}

// esIndexData is what the index template sees: the entry's fields plus .Date.
type esIndexData struct {
	*event.Entry
	Date string // entry time, UTC, 2006.01.02
}

func newESSink(_ string, opts config.Options) (Sink, error) {
	var o esOptions
	if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
		return nil, err
	}
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	s := &ElasticsearchSink{bulkURL: joinURL(u, "/_bulk"), rootURL: joinURL(u, "/"), display: config.MaskURL(u.String())}
	s.bulkShow, s.rootShow = config.MaskURL(s.bulkURL), config.MaskURL(s.rootURL)
	if s.idKey, err = idFieldKey(o.IDField); err != nil {
		return nil, err
	}
	switch o.Mode {
	case "", "index":
		if o.Index == "" {
			o.Index = "logcap-{{.Date}}"
		}
	case "data_stream":
		s.create = true
		if o.Index == "" {
			// Matches the built-in logs-*-* index template of Elasticsearch 8.
			o.Index = "logs-logcap-default"
		}
	default:
		return nil, fmt.Errorf("mode: want index or data_stream, got %q", o.Mode)
	}
	if s.index, err = template.New("index").Option("missingkey=zero").Parse(o.Index); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if !strings.Contains(o.Index, "{{") {
		if err := esValidIndex(o.Index); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		s.static = o.Index
	}
	if s.t, err = newTransport(o.Transport, true); err != nil {
		return nil, err
	}
	return s, nil
}

// esValidIndex applies Elasticsearch's index naming rules, so that a bad rendered name fails
// its entries here with a clear message instead of as an opaque per-item error.
func esValidIndex(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid index name %q", name)
	case len(name) > 255:
		return fmt.Errorf("index name longer than 255 bytes: %.40q…", name)
	case strings.ToLower(name) != name:
		return fmt.Errorf("index name %q must be lowercase", name)
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:") || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' }):
		return fmt.Errorf("index name %q contains a character Elasticsearch forbids (\\ / * ? \" < > | space , # :)", name)
	case strings.IndexAny(name, "-_+") == 0:
		return fmt.Errorf("index name %q must not start with -, _ or +", name)
	}
	return nil
}

func (s *ElasticsearchSink) indexFor(r *Record, buf *bytes.Buffer) (string, error) {
	if s.static != "" {
		return s.static, nil
	}
	buf.Reset()
	d := esIndexData{Entry: &r.Entry, Date: r.Time.UTC().Format("2006.01.02")}
	if err := s.index.Execute(buf, d); err != nil {
		return "", fmt.Errorf("index: %w", err)
	}
	name := strings.ReplaceAll(buf.String(), "<no value>", "")
	if err := esValidIndex(name); err != nil {
		return "", err
	}
	return name, nil
}

// buildBulk appends the action/document pairs to out. sent[k] is the batch index of the
// k-th item, which is how the response's items map back to records. Everything is appended
// by hand (appendESDocJSON): json.Marshal per document and action was 40% of the sink's CPU.
func (s *ElasticsearchSink) buildBulk(out []byte, batch []Record) (body []byte, sent []int, bad map[int]error) {
	var buf bytes.Buffer
	fail := func(i int, err error) {
		if bad == nil {
			bad = map[int]error{}
		}
		bad[i] = Permanent(fmt.Errorf("elasticsearch %s: %s: %w", s.display, batch[i].ID(), err))
	}
	action := `{"index":{"_index":`
	if s.create {
		action = `{"create":{"_index":`
	}
	sent = make([]int, 0, len(batch))
	out = slices.Grow(out, bodyEstimate(batch))
	var id []byte
	for i := range batch {
		r := &batch[i]
		idx, err := s.indexFor(r, &buf)
		if err != nil {
			fail(i, err)
			continue
		}
		id = r.AppendID(id[:0])
		mark := len(out)
		out = append(out, action...)
		out = jsonscan.AppendStringHTML(out, idx)
		out = append(out, `,"_id":"`...)
		out = append(out, id...)
		out = append(out, "\"}}\n"...)
		if out, err = appendESDocJSON(out, &r.Entry, s.idKey, id); err != nil {
			out = out[:mark]
			fail(i, fmt.Errorf("encode: %w", err))
			continue
		}
		out = append(out, '\n')
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		return nil, nil, bad
	}
	return out, sent, bad
}

type esBulkResponse struct {
	Took   int                     `json:"took"`
	Errors bool                    `json:"errors"`
	Items  []map[string]esBulkItem `json:"items"`
}

type esBulkItem struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

type esError struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

func (e esBulkItem) errText() (typ, text string) {
	var ee esError
	if len(e.Error) == 0 {
		return "", ""
	}
	if json.Unmarshal(e.Error, &ee) == nil && ee.Type != "" {
		return ee.Type, ee.Type + ": " + ee.Reason
	}
	var str string
	if json.Unmarshal(e.Error, &str) == nil {
		return "", str
	}
	return "", snippet(e.Error)
}

// esClassify reads a 200 _bulk answer. It returns the failed items by batch index (nil when
// all were stored), or an error for the whole batch when the answer cannot be matched to
// what was sent.
func esClassify(body []byte, sent []int, create bool) (map[int]error, error) {
	if esNoErrors(body) {
		return nil, nil
	}
	var resp esBulkResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("bulk response: %w", err)
	}
	if !resp.Errors {
		return nil, nil
	}
	if len(resp.Items) != len(sent) {
		// Cannot tell which item is which: the whole batch again (idempotent by _id).
		return nil, fmt.Errorf("bulk response has %d items for %d actions", len(resp.Items), len(sent))
	}
	var failed map[int]error
	for k, item := range resp.Items {
		var op string
		var it esBulkItem
		for op, it = range item {
			break
		}
		if len(item) != 1 {
			return nil, fmt.Errorf("bulk response item %d: want one action, got %d", k, len(item))
		}
		if it.Status >= 200 && it.Status < 300 {
			continue
		}
		typ, text := it.errText()
		if it.Status == http.StatusConflict && create && op == "create" && typ == "version_conflict_engine_exception" {
			// Already stored by an earlier delivery whose answer was lost.
			continue
		}
		err := fmt.Errorf("%s %s/%s: status %d: %s", op, it.Index, it.ID, it.Status, text)
		if it.Status != http.StatusTooManyRequests && it.Status < 500 {
			err = Permanent(err)
		}
		if failed == nil {
			failed = map[int]error{}
		}
		failed[sent[k]] = err
	}
	return failed, nil
}

// Write sends the batch as one _bulk request.
func (s *ElasticsearchSink) Write(ctx context.Context, batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	body, sent, bad := s.buildBulk((*bp)[:0], batch)
	keepBuffer(bp, body)
	if body == nil {
		return mergeFailures(len(batch), bad, nil)
	}
	wrap := func(err error) error { return fmt.Errorf("elasticsearch: POST %s: %w", s.bulkShow, err) }
	r, err := s.t.do(ctx, http.MethodPost, s.bulkURL, "application/x-ndjson", body, nil)
	if err != nil {
		return mergeFailures(len(batch), bad, wrap(err))
	}
	if err := statusError(r, time.Now()); err != nil {
		return mergeFailures(len(batch), bad, wrap(err))
	}
	failed, err := esClassify(r.body, sent, s.create)
	if err != nil {
		return mergeFailures(len(batch), bad, wrap(err))
	}
	for i, e := range failed {
		if bad == nil {
			bad = map[int]error{}
		}
		bad[i] = wrap(e)
	}
	if len(bad) == 0 {
		return nil
	}
	return &PartialError{Failed: bad}
}

// Check asks the cluster's root endpoint, which every Elasticsearch and OpenSearch serves.
func (s *ElasticsearchSink) Check(ctx context.Context) error {
	if err := s.t.probe(ctx, http.MethodGet, s.rootURL); err != nil {
		return fmt.Errorf("elasticsearch: check: GET %s: %w", s.rootShow, err)
	}
	return nil
}

// Close releases the sink's idle connections.
func (s *ElasticsearchSink) Close() error {
	s.t.close()
	return nil
}
