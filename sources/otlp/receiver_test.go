package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/otlp"
	"github.com/logcap/logcap/streams"
)

// heldGate is LOGS full under when_full: block (the retention guard holding the sources).
type heldGate struct{}

func (heldGate) Wait(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func newJS(t *testing.T) jetstream.JetStream { return newJSB(t) }

func newJSB(t testing.TB) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t, nil))
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return js
}

func request(l *otlp.Logs) []byte { return otlp.AppendProto(nil, l) }

func logsOf(service string, bodies ...any) *otlp.Logs {
	recs := make([]otlp.Record, len(bodies))
	for i, b := range bodies {
		recs[i] = otlp.Record{Time: uint64(1700000000000000000 + i), Body: b, SeverityNumber: otlp.SeverityInfo, SeverityText: "info",
			Attrs: []otlp.KV{{Key: "user", Value: "u1"}}, TraceID: bytes.Repeat([]byte{1}, 16)}
	}
	return &otlp.Logs{Resources: []otlp.ResourceLogs{{
		Attrs:  []otlp.KV{{Key: "service.name", Value: service}, {Key: "host.name", Value: "web-1"}},
		Scopes: []otlp.ScopeLogs{{Name: "lib", Records: recs}},
	}}}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func stored(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// Every way a request ends: the status, the Retry-After, what is stored, and a body that
// says why in the request's encoding.
func TestReceiverAnswers(t *testing.T) {
	ok := request(logsOf("shop", "a", "b"))
	okJSON, _ := otlp.AppendJSON(nil, logsOf("shop", "a"))
	big := strings.Repeat("x", 8<<10)
	bomb := gz(make([]byte, 2<<20))
	notReady := make(chan struct{})
	for _, tc := range []struct {
		name, method, path, ctype, enc, auth string
		body                                 []byte
		opts                                 func(*Options)
		gate                                 bool
		unready                              bool
		status                               int
		retryAfter                           string
		stored                               uint64
		want                                 string // in the answer's body
		rejected                             int64
	}{
		{name: "protobuf", body: ok, status: 200, stored: 1},
		{name: "json", ctype: "application/json", body: okJSON, status: 200, stored: 1, want: "{}"},
		{name: "gzip", enc: "gzip", body: gz(ok), status: 200, stored: 1},
		{name: "empty request", body: nil, status: 200},
		{name: "bad protobuf", body: []byte{0xff, 0xff}, status: 400, want: "bad payload"},
		{name: "bad json", ctype: "application/json", body: []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"nothex"}]}]}]}`), status: 400, want: "traceId"},
		{name: "bad gzip", enc: "gzip", body: []byte("not gzip"), status: 400, want: "gzip"},
		{name: "unknown encoding", enc: "br", body: ok, status: 415},
		{name: "text/plain", ctype: "text/plain", body: ok, status: 415},
		{name: "wrong path", path: "/v1/traces", body: ok, status: 404},
		{name: "GET", method: "GET", status: 405},
		{name: "too big", body: request(logsOf("shop", big, big)), opts: func(o *Options) { o.MaxRequestBytes = 10 << 10 }, status: 413},
		{name: "gzip bomb", enc: "gzip", body: bomb, opts: func(o *Options) { o.MaxRequestBytes = 1 << 20 }, status: 413, want: "decompressed"},
		{name: "no token", body: ok, opts: func(o *Options) { o.Auth = &Auth{Bearer: "s3cret"} }, status: 401},
		{name: "wrong token", auth: "Bearer nope", body: ok, opts: func(o *Options) { o.Auth = &Auth{Bearer: "s3cret"} }, status: 401},
		{name: "right token", auth: "Bearer s3cret", body: ok, opts: func(o *Options) { o.Auth = &Auth{Bearer: "s3cret"} }, status: 200, stored: 1},
		{name: "LOGS full", body: ok, gate: true, status: 429, retryAfter: "5"},
		{name: "NATS not ready", body: ok, unready: true, status: 503, retryAfter: "1"},
		{name: "record above max_chunk_bytes", body: request(logsOf("shop", "small", big)), opts: func(o *Options) { o.MaxChunkBytes = 4 << 10 },
			status: 200, stored: 1, rejected: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJS(t)
			o, err := Decode(config.Component{Name: "otel", Type: Type})
			if err != nil {
				t.Fatal(err)
			}
			o.FullWait = config.Duration(50 * time.Millisecond)
			if tc.opts != nil {
				tc.opts(&o)
			}
			var gate streamsGate
			if tc.gate {
				gate = heldGate{}
			}
			rc := NewReceiver("otel", "node-1", o, js, gate, zap.NewNop(), nil)
			if tc.unready {
				rc.Ready = notReady
			}
			req := newRequest(tc.method, tc.path, tc.ctype, tc.enc, tc.auth, tc.body)
			ctype := req.Header.Get("Content-Type")
			w := httptest.NewRecorder()
			rc.ServeHTTP(w, req)
			if w.Code != tc.status || w.Header().Get("Retry-After") != tc.retryAfter || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("answer %d (Retry-After %q) %q; want %d (Retry-After %q) containing %q",
					w.Code, w.Header().Get("Retry-After"), w.Body.String(), tc.status, tc.retryAfter, tc.want)
			}
			if n := stored(t, js); n != tc.stored {
				t.Fatalf("%d messages stored, want %d", n, tc.stored)
			}
			if tc.status == 200 && ctype != "application/json" {
				ps, err := otlp.DecodeResponse(w.Body.Bytes())
				if err != nil || ps.Rejected != tc.rejected {
					t.Fatalf("partial success %+v (%v), want %d rejected", ps, err, tc.rejected)
				}
			}
		})
	}
}

type streamsGate = streams.Gate

// newRequest is an export request: POST /v1/logs in protobuf unless said otherwise.
func newRequest(method, path, ctype, enc, auth string, body []byte) *http.Request {
	if method == "" {
		method = "POST"
	}
	if path == "" {
		path = "/v1/logs"
	}
	if ctype == "" {
		ctype = "application/x-protobuf"
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

// A request is stored as NDJSON entries on logs.otlp.<host>.<service.name> with what OTLP
// carried in fields; the same request sent again (a retry after a lost answer) stores
// nothing new; resources without host.name or service.name take the node and
// unknown_service, sanitized into subject tokens.
func TestReceiverStores(t *testing.T) {
	js := newJS(t)
	o, _ := Decode(config.Component{Name: "otel", Type: Type})
	rc := NewReceiver("otel", "node-1", o, js, nil, zap.NewNop(), nil)
	l := logsOf("shop.eu api", "hello", otlp.KV{}.Value)
	l.Resources = append(l.Resources, otlp.ResourceLogs{Scopes: []otlp.ScopeLogs{{Records: []otlp.Record{{Body: []otlp.KV{{Key: "k", Value: int64(1)}}}}}}})
	body := request(l)
	for range 2 {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/logs", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		rc.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	if n := stored(t, js); n != 2 {
		t.Fatalf("%d messages stored, want 2 (one per subject, the retry deduplicated)", n)
	}
	for _, tc := range []struct {
		subject string
		check   func(msgs []string) error
	}{
		{subject: "logs.otlp.web-1.shop%2Eeu%20api"},
		{subject: "logs.otlp.node-1.unknown_service"},
	} {
		m, err := streams.LastMsg(t.Context(), js, "LOGS", tc.subject)
		if err != nil || m == nil {
			t.Fatalf("%s: %v", tc.subject, err)
		}
		ents, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch tc.subject {
		case "logs.otlp.web-1.shop%2Eeu%20api":
			e := ents[0]
			if len(ents) != 2 || e.Message != "hello" || e.Host != "web-1" || e.Source != "shop.eu api" || e.Kind != "otlp" ||
				e.Time != time.Unix(0, 1700000000000000000).UTC() || e.Fields["user"] != "u1" || e.Fields["severity_text"] != "info" ||
				e.Fields["severity_number"] != int64(9) || e.Fields["trace_id"] != strings.Repeat("01", 16) ||
				e.Fields["resource"].(map[string]any)["service.name"] != "shop.eu api" || e.Fields["scope"].(map[string]any)["name"] != "lib" {
				t.Fatalf("entries %+v", ents)
			}
			if ents[1].Message != "" {
				t.Fatalf("empty body: message %q", ents[1].Message)
			}
			if m.Header.Get(streams.HdrReadTime) == "" || m.Header.Get(streams.HdrMsgID) == "" {
				t.Fatalf("headers %v", m.Header)
			}
		default:
			if len(ents) != 1 || ents[0].Message != `{"k":1}` || ents[0].Host != "node-1" || ents[0].Source != UnknownService {
				t.Fatalf("entries %+v", ents)
			}
		}
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		yaml, err string
	}{
		{yaml: ``},
		{yaml: `listen: "0.0.0.0:4318"`, err: "not a loopback address"},
		{yaml: `listen: "0.0.0.0:4318", auth: {bearer: x}`},
		{yaml: `listen: "[::1]:4318"`},
		{yaml: `listen: "localhost:4318"`},
		{yaml: `listen: "nope"`, err: "listen"},
		{yaml: `max_chunk_bytes: 100`, err: "max_chunk_bytes"},
		{yaml: `auth: {bearer: ""}`, err: "auth.bearer"},
		{yaml: `tls: {cert: a}`, err: "tls"},
		{yaml: `bogus: 1`, err: "bogus"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf("sources:\n  - {name: otel, type: otlp, %s}\n", tc.yaml)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Decode(cfg.Sources[0])
			if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// The receiver's decoding never panics and never stores what it cannot decode; what it
// decodes maps to entries and messages without an error.
func FuzzReceiverPayload(f *testing.F) {
	f.Add(request(logsOf("shop", "a", 1.5)), false)
	j, _ := otlp.AppendJSON(nil, logsOf("shop", "a"))
	f.Add(j, true)
	f.Fuzz(func(t *testing.T, b []byte, asJSON bool) {
		var l *otlp.Logs
		var err error
		if asJSON {
			l, err = otlp.DecodeJSON(b)
		} else {
			l, err = otlp.DecodeProto(b)
		}
		if err != nil {
			return
		}
		checkLines(t, l)
	})
}

// checkLines checks that Lines writes what Entries maps, and that Msgs packs it.
func checkLines(t *testing.T, l *otlp.Logs) {
	t.Helper()
	now := time.Unix(1, 0)
	subjects, groups := Entries(l, "node", now)
	lines := Lines(l, "node", now)
	if len(lines) != len(subjects) {
		t.Fatalf("%d subjects, Entries says %d", len(lines), len(subjects))
	}
	for i, g := range lines {
		if _, err := streams.ParseSubject(g.subject); err != nil || g.subject != subjects[i] {
			t.Fatalf("subject %q (%v), Entries says %q", g.subject, err, subjects[i])
		}
		got, err := streams.DecodeNDJSON(bytes.Join(g.lines, nil))
		if err != nil {
			t.Fatalf("lines do not decode: %v\n%s", err, bytes.Join(g.lines, nil))
		}
		var ref []byte
		for j := range groups[i] {
			if ref, err = streams.AppendNDJSON(ref, &groups[i][j]); err != nil {
				t.Fatalf("entry %d: %v", j, err)
			}
		}
		want, err := streams.DecodeNDJSON(ref)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("lines decode to\n%+v\nEntries (through encoding/json) to\n%+v\nlines:\n%s", got, want, bytes.Join(g.lines, nil))
		}
		msgs, tooBig := Msgs(g.subject, fmt.Sprint("id:", i), g.lines, now, 4<<10)
		n := len(tooBig)
		for _, m := range msgs {
			c, _ := strconv.Atoi(m.Header.Get(streams.HdrLines))
			n += c
			if len(m.Data) > 4<<10 {
				t.Fatalf("message of %d bytes", len(m.Data))
			}
		}
		if n != len(g.lines) {
			t.Fatalf("messages hold %d lines (+ too big), want %d", n, len(g.lines))
		}
	}
}

// The direct encoder writes what Entries maps, through encoding/json, for every kind of
// value, string escape, repeated key and reserved name.
func TestEncodeMatchesEntries(t *testing.T) {
	l := logsOf("shop", "plain", "quote \" back\\ tab\t nl\n ctl\x01 \u2028 bad\xff utf8 ünï", 1.5, int64(7), true, nil,
		[]any{"a", 1e8, 1e-9, math.NaN(), []byte{1, 2}}, []otlp.KV{{Key: "k", Value: math.Inf(-1)}})
	rec := &l.Resources[0].Scopes[0].Records[0]
	rec.Attrs = append(rec.Attrs, otlp.KV{Key: "dup", Value: "first"}, otlp.KV{Key: "dup", Value: "second"},
		otlp.KV{Key: "severity_text", Value: "shadowed"}, otlp.KV{Key: "n", Value: 100000000.0}, otlp.KV{Key: "big", Value: 1e300})
	rec.SpanID, rec.EventName, rec.Flags = []byte{9, 9}, "ev", 3
	l.Resources = append(l.Resources, otlp.ResourceLogs{Scopes: []otlp.ScopeLogs{{Records: []otlp.Record{{}, {Observed: 5}}}}})
	checkLines(t, l)
}

var _ http.Handler = (*Receiver)(nil)
