package sinks

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/logcap/logcap/config"
)

func init() { Register("http", newHTTPSink) }

// HTTPSink posts each batch as one request to a generic HTTP endpoint.
type HTTPSink struct {
	url         string // for requests
	display     string // for messages: credentials redacted
	method      string
	contentType string
	array       bool
	idKey       string // the document's key for the record ID, quoted JSON
	t           *transport
}

var _ Sink = (*HTTPSink)(nil)

type httpOptions struct {
	URL       string           `yaml:"url"`
	Method    string           `yaml:"method"`
	Encoding  string           `yaml:"encoding"`
	IDField   string           `yaml:"id_field"`
	Transport transportOptions `yaml:",inline"`
}

func newHTTPSink(_ string, opts config.Options) (Sink, error) {
	var o httpOptions
	if err := opts.Decode(&o, config.PipelineKeys...); err != nil {
		return nil, err
	}
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	s := &HTTPSink{url: u.String(), display: config.MaskURL(u.String()), idKey: `"_id"`}
	// What the endpoint receives per record: the entry plus its idempotency key (under
	// id_field, default _id), so that a receiver that wants to can drop redeliveries.
	if o.IDField != "" && o.IDField != "_id" {
		if s.idKey, err = idFieldKey(o.IDField); err != nil {
			return nil, err
		}
	}
	switch o.Method {
	case "", "POST":
		s.method = http.MethodPost
	case "PUT":
		s.method = http.MethodPut
	default:
		return nil, fmt.Errorf("method: want POST or PUT, got %q", o.Method)
	}
	switch o.Encoding {
	case "", "ndjson":
		s.contentType = "application/x-ndjson"
	case "json_array":
		s.contentType, s.array = "application/json", true
	default:
		return nil, fmt.Errorf("encoding: want ndjson or json_array, got %q", o.Encoding)
	}
	if s.t, err = newTransport(o.Transport, false); err != nil {
		return nil, err
	}
	return s, nil
}

// encode appends the body to out; records that cannot be encoded are returned as
// permanent failures and left out.
func (s *HTTPSink) encode(out []byte, batch []Record) ([]byte, map[int]error) {
	var bad map[int]error
	if s.array {
		out = append(out, '[')
	}
	first := true
	var id []byte
	for i := range batch {
		mark := len(out)
		if s.array && !first {
			out = append(out, ',')
		}
		id = batch[i].AppendID(id[:0])
		var err error
		if out, err = appendEntryJSON(out, &batch[i].Entry, s.idKey, id); err != nil {
			out = out[:mark]
			if bad == nil {
				bad = map[int]error{}
			}
			bad[i] = Permanent(fmt.Errorf("http %s: encode %s: %w", s.display, batch[i].ID(), err))
			continue
		}
		first = false
		if !s.array {
			out = append(out, '\n')
		}
	}
	if s.array {
		out = append(out, ']')
	}
	if first {
		return nil, bad
	}
	return out, bad
}

// Write sends the batch in one request.
func (s *HTTPSink) Write(ctx context.Context, batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	body, bad := s.encode((*bp)[:0], batch)
	keepBuffer(bp, body)
	if body == nil {
		return mergeFailures(len(batch), bad, nil)
	}
	var sendErr error
	r, err := s.t.do(ctx, s.method, s.url, s.contentType, body, nil)
	if err != nil {
		sendErr = fmt.Errorf("http: %s %s: %w", s.method, s.display, err)
	} else if err := statusError(r, time.Now()); err != nil {
		sendErr = fmt.Errorf("http: %s %s: %w", s.method, s.display, err)
	}
	return mergeFailures(len(batch), bad, sendErr)
}

// Check asks the endpoint with HEAD: any answer but 429/502/503/504 shows it is up (a
// generic endpoint may well answer HEAD with 404, 405 or 501).
func (s *HTTPSink) Check(ctx context.Context) error {
	if err := s.t.probe(ctx, http.MethodHead, s.url); err != nil {
		return fmt.Errorf("http: check: HEAD %s: %w", s.display, err)
	}
	return nil
}

// Close releases the sink's idle connections.
func (s *HTTPSink) Close() error {
	s.t.close()
	return nil
}
