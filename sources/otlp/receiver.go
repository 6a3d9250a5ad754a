package otlp

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/otlp"
	"github.com/logcap/logcap/streams"
)

// Path is the OTLP/HTTP logs path.
const Path = "/v1/logs"

const (
	// publishTimeout bounds one publish: past it the request is answered 503 and the
	// sender retries (the msg ids make the retry safe).
	publishTimeout = 10 * time.Second
	// retryAfter is the Retry-After of a 429 (LOGS full) or 503 (NATS away), in seconds.
	retryAfterFull, retryAfterDown = "5", "1"
)

// Receiver is the http.Handler of one otlp source.
type Receiver struct {
	name, node string
	opts       Options
	js         jetstream.JetStream
	gate       streams.Gate // nil: never held
	log        *zap.Logger
	met        *Metrics
	now        func() time.Time
	// Ready, when set, is closed once LOGS can be published to; until then requests are
	// answered 503 (an external NATS that is not up yet).
	Ready <-chan struct{}
}

// NewReceiver builds the handler of source name; it publishes with js.
func NewReceiver(name, node string, opts Options, js jetstream.JetStream, gate streams.Gate, log *zap.Logger, met *Metrics) *Receiver {
	return &Receiver{name: name, node: node, opts: opts, js: js, gate: gate, log: log, met: met, now: time.Now}
}

// answer is how a request ends: the status, and the message of an error (the body is a
// google.rpc.Status) or the partial success of a 200.
type answer struct {
	status     int
	msg        string
	retryAfter string
	partial    otlp.PartialSuccess
	records    int
}

func fail(status int, format string, args ...any) answer {
	return answer{status: status, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP takes one export request.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	asJSON := false
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && ct == "application/json" {
		asJSON = true
	}
	a := rc.serve(r, asJSON)
	rc.met.request(a.status, a.records, a.partial.Rejected)
	if a.status >= 500 || a.status == http.StatusTooManyRequests {
		rc.log.Warn("otlp: request not taken; the sender retries", zap.String("source", rc.name), zap.Int("status", a.status), zap.String("why", a.msg))
	} else if a.status >= 400 {
		rc.log.Info("otlp: request refused", zap.String("source", rc.name), zap.Int("status", a.status), zap.String("why", a.msg))
	}
	var body []byte
	switch {
	case a.status == http.StatusOK && asJSON:
		body = otlp.AppendJSONResponse(nil, a.partial)
	case a.status == http.StatusOK:
		body = otlp.AppendResponse(nil, a.partial)
	case asJSON:
		body = otlp.AppendJSONStatus(nil, grpcCode(a.status), a.msg)
	default:
		body = otlp.AppendStatus(nil, grpcCode(a.status), a.msg)
	}
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(a.status)
	_, _ = w.Write(body)
}

// grpcCode is the google.rpc.Code of an HTTP status, for the Status body.
func grpcCode(status int) int32 {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	case http.StatusNotFound:
		return 5 // NOT_FOUND
	case http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return 12 // UNIMPLEMENTED
	}
	return 2 // UNKNOWN
}

func (rc *Receiver) serve(r *http.Request, asJSON bool) answer {
	if r.URL.Path != Path {
		return fail(http.StatusNotFound, "%s: only %s takes logs", r.URL.Path, Path)
	}
	if r.Method != http.MethodPost {
		return fail(http.StatusMethodNotAllowed, "method %s: want POST", r.Method)
	}
	if a, ok := rc.authorized(r); !ok {
		return a
	}
	if rc.Ready != nil {
		select {
		case <-rc.Ready:
		default:
			a := fail(http.StatusServiceUnavailable, "not ready: NATS is not connected yet")
			a.retryAfter = retryAfterDown
			return a
		}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-protobuf" && ct != "application/json" {
		return fail(http.StatusUnsupportedMediaType, "content type %q: want application/x-protobuf or application/json", ct)
	}
	body, a, ok := rc.readBody(r)
	if !ok {
		return a
	}
	var l *otlp.Logs
	var err error
	if asJSON {
		l, err = otlp.DecodeJSON(body)
	} else {
		l, err = otlp.DecodeProto(body)
	}
	if err != nil {
		return fail(http.StatusBadRequest, "bad payload: %v", err)
	}
	return rc.store(r.Context(), l, body)
}

// authorized checks the bearer token; a client certificate was checked by TLS already.
func (rc *Receiver) authorized(r *http.Request) (answer, bool) {
	if rc.opts.Auth == nil {
		return answer{}, true
	}
	want := "Bearer " + string(rc.opts.Auth.Bearer)
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		return fail(http.StatusUnauthorized, "missing or wrong bearer token"), false
	}
	return answer{}, true
}

// readBody reads the whole body, gunzipped, within max_request_bytes either way.
func (rc *Receiver) readBody(r *http.Request) ([]byte, answer, bool) {
	limit := int64(rc.opts.MaxRequestBytes)
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, limit)
	switch r.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, rc.bodyError(err, "gzip"), false
		}
		defer zr.Close()
		rd = io.LimitReader(zr, limit+1)
	default:
		return nil, fail(http.StatusUnsupportedMediaType, "content encoding %q: want gzip or none", r.Header.Get("Content-Encoding")), false
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		return nil, rc.bodyError(err, "read body"), false
	}
	if int64(len(body)) > limit {
		return nil, fail(http.StatusRequestEntityTooLarge, "request bigger than max_request_bytes (%d) once decompressed", limit), false
	}
	return body, answer{}, true
}

func (rc *Receiver) bodyError(err error, what string) answer {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fail(http.StatusRequestEntityTooLarge, "request bigger than max_request_bytes (%d)", mbe.Limit)
	}
	return fail(http.StatusBadRequest, "%s: %v", what, err)
}

// store publishes the request's records and waits for every ack. The msg ids come from the
// request's bytes: a sender that retries a request whose answer it lost (logcap killed
// after the ack) stores nothing twice within the stream's duplicate window.
func (rc *Receiver) store(ctx context.Context, l *otlp.Logs, body []byte) answer {
	n := l.Count()
	if n == 0 {
		return answer{status: http.StatusOK}
	}
	if rc.gate != nil {
		gctx, cancel := context.WithTimeout(ctx, rc.opts.FullWait.D())
		err := rc.gate.Wait(gctx)
		cancel()
		if err != nil {
			a := fail(http.StatusTooManyRequests, "LOGS is full or the memory budget is spent (when_full: block): retry later")
			a.retryAfter = retryAfterFull
			return a
		}
	}
	now := rc.now()
	sum := sha256.Sum256(body)
	id := "otlp:" + hex.EncodeToString(sum[:16])
	var rejected []string
	for gi, g := range Lines(l, rc.node, now) {
		msgs, tooBig := Msgs(g.subject, id+":"+strconv.Itoa(gi), g.lines, now, int(rc.opts.MaxChunkBytes))
		for range tooBig {
			rejected = append(rejected, fmt.Sprintf("a record on %s bigger than max_chunk_bytes (%d)", g.subject, rc.opts.MaxChunkBytes))
		}
		for _, m := range msgs {
			if a, ok := rc.publish(ctx, m); !ok {
				return a
			}
		}
	}
	a := answer{status: http.StatusOK, records: n - len(rejected)}
	if len(rejected) > 0 {
		a.partial = otlp.PartialSuccess{Rejected: int64(len(rejected)), Message: rejected[0]}
		rc.log.Warn("otlp: records refused (partial success)", zap.String("source", rc.name), zap.Int("records", len(rejected)), zap.String("why", rejected[0]))
	}
	return a
}

func (rc *Receiver) publish(ctx context.Context, m *nats.Msg) (answer, bool) {
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := rc.js.PublishMsg(pctx, m); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return fail(http.StatusRequestEntityTooLarge, "a message of %d bytes is above the server's max payload: lower max_chunk_bytes", len(m.Data)), false
		}
		a := fail(http.StatusServiceUnavailable, "publish to %s: %v", m.Subject, err)
		a.retryAfter = retryAfterDown
		return a, false
	}
	return answer{}, true
}
