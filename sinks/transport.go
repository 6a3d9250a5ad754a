package sinks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/logcap/logcap/config"
)

// RetryAfterError is a transient error for which the destination said how long to wait
// (HTTP 429/503 with Retry-After). The pipeline waits After before redelivering, instead of
// its own backoff.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// maxRetryAfter bounds what a server may ask for: a bogus header must not park a sink for
// years (nor overflow time.Duration).
const maxRetryAfter = time.Hour

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		d = 0
	case d > maxRetryAfter:
		d = maxRetryAfter
	}
	return d, true
}

// transportOptions are the connection keys every HTTP-based sink accepts. Sinks embed them
// inline in their own options struct.
type transportOptions struct {
	TLS         *config.TLS       `yaml:"tls"`
	Timeout     config.Duration   `yaml:"timeout"`
	Headers     map[string]string `yaml:"headers"`
	Auth        *authOptions      `yaml:"auth"`
	Compression string            `yaml:"compression"`
}

type authOptions struct {
	Basic  *basicAuth `yaml:"basic"`
	Bearer string     `yaml:"bearer"`
	APIKey string     `yaml:"api_key"` // Elasticsearch only: Authorization: ApiKey …
}

type basicAuth struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

const (
	defaultTimeout = 30 * time.Second
	// maxResponseBytes bounds what a sink reads of an answer. A _bulk response for a big batch
	// is the largest legitimate one (~150 B per item).
	maxResponseBytes = 32 << 20
	// errorBodyBytes is how much of an error answer goes into the error message.
	errorBodyBytes = 512
)

// transport is one sink's HTTP client: its own connection pool, so that closing a sink
// releases exactly its connections, and so one slow destination cannot starve another.
type transport struct {
	tr      *http.Transport
	client  *http.Client
	timeout time.Duration
	header  http.Header // static headers, auth included
	gzip    bool
	closed  atomic.Bool
}

// newTransport validates o and builds the client. It reads the TLS files (so `logcap check`
// reports a missing certificate) but opens no connection.
func newTransport(o transportOptions, allowAPIKey bool) (*transport, error) {
	t := &transport{timeout: o.Timeout.D(), header: http.Header{}}
	if t.timeout == 0 {
		t.timeout = defaultTimeout
	}
	switch o.Compression {
	case "", "gzip":
		t.gzip = true
	case "none":
	default:
		return nil, fmt.Errorf("compression: want gzip or none, got %q", o.Compression)
	}
	for k, v := range o.Headers {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("headers.%s: invalid header name", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("headers.%s: value contains a line break or NUL", k)
		}
		t.header.Set(k, v)
	}
	if a := o.Auth; a != nil {
		n := 0
		if a.Basic != nil {
			n++
			if a.Basic.User == "" {
				return nil, errors.New("auth.basic.user: required")
			}
			t.header.Set("Authorization", "Basic "+
				base64.StdEncoding.EncodeToString([]byte(a.Basic.User+":"+a.Basic.Password)))
		}
		if a.Bearer != "" {
			n++
			t.header.Set("Authorization", "Bearer "+a.Bearer)
		}
		if a.APIKey != "" {
			if !allowAPIKey {
				return nil, errors.New("auth.api_key: only the elasticsearch sink takes an API key (use auth.bearer or headers)")
			}
			n++
			t.header.Set("Authorization", "ApiKey "+a.APIKey)
		}
		if n > 1 {
			return nil, errors.New("auth: give one of basic, bearer, api_key")
		}
		if _, set := o.Headers["Authorization"]; set && n == 1 {
			return nil, errors.New("headers.Authorization: conflicts with auth")
		}
	}
	tlsCfg, err := buildTLS(o.TLS)
	if err != nil {
		return nil, err
	}
	t.tr = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:   tlsCfg,
		ForceAttemptHTTP2: true,
		// One idle connection per write in flight (request.concurrency, up to 64).
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	t.client = &http.Client{
		Transport: t.tr,
		// A 301/302 would turn the POST into a bodyless GET that "succeeds": refuse
		// redirects and report them, the user configures the final URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return t, nil
}

func buildTLS(o *config.TLS) (*tls.Config, error) {
	if o == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca: %s: no PEM certificate found", o.CA)
		}
		c.RootCAs = pool
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("tls.cert, tls.key: give both or neither")
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		// RFC 9110 token characters.
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// parseURL validates a sink's url key.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("url: required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url: want an http:// or https:// URL, got %q", config.MaskURL(u.String()))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url: %q has no host", config.MaskURL(u.String()))
	}
	return u, nil
}

// idFieldKey validates an id_field option and returns the key as JSON (quoted), "" when
// unset. A name starting with _ is refused: _id and the other metadata fields are rejected
// inside an Elasticsearch document, and VictoriaLogs reserves _msg, _time and _stream.
func idFieldKey(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if strings.HasPrefix(name, "_") || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r == 0x7f }) {
		return "", fmt.Errorf("id_field: %q: want a plain field name, not starting with _ (e.g. logcap_id)", name)
	}
	return strconv.Quote(name), nil
}

// withIDField appends "key":"id" to the JSON object doc (key already quoted). An ID is
// <stream>-<seq>-<index>: nothing in it needs escaping.
func withIDField(doc []byte, key, id string) []byte {
	if key == "" || len(doc) < 2 || doc[len(doc)-1] != '}' {
		return doc
	}
	doc = doc[:len(doc)-1]
	if len(doc) > 1 {
		doc = append(doc, ',')
	}
	doc = append(doc, key...)
	doc = append(doc, ':', '"')
	doc = append(doc, id...)
	return append(doc, '"', '}')
}

// joinURL is base with elem appended to its path (one slash between them); its query string
// and fragment stay where they are: http://h/insert?_msg_field=m + /_bulk is
// http://h/insert/_bulk?_msg_field=m, not http://h/insert?_msg_field=m/_bulk.
func joinURL(base *url.URL, elem string) string {
	u := *base
	u.Path = strings.TrimRight(u.Path, "/") + elem
	if u.RawPath != "" {
		u.RawPath = strings.TrimRight(u.RawPath, "/") + elem
	}
	return u.String()
}

// response is an answer read in full (up to maxResponseBytes), its connection returned to
// the pool.
type response struct {
	status int
	header http.Header
	body   []byte
}

// bodyBuffers hold request bodies between writes: a sink's 1 MiB body is built into a
// buffer of the last one's size instead of growing a fresh one by doubling.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptBuffer bounds what a pooled buffer may keep between writes.
const maxKeptBuffer = 16 << 20

// keepBuffer gives the memory of b (built from *bp) back to *bp, unless it grew too big.
func keepBuffer(bp *[]byte, b []byte) {
	if cap(b) > cap(*bp) && cap(b) <= maxKeptBuffer {
		*bp = b[:0]
	}
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// do makes one request bounded by the sink's timeout and reads the whole answer within it.
// Errors are transport errors (connection refused, reset, timeout): all transient. body is
// the caller's again when do returns (it may be a pooled buffer): it is compressed (gzip,
// unless compression: none) or copied, since the HTTP transport may still read a request's
// body after the answer came.
func (t *transport) do(ctx context.Context, method, u, contentType string, body []byte, extra http.Header) (*response, error) {
	if body == nil {
		return t.send(ctx, method, u, contentType, "", nil, extra)
	}
	if !t.gzip {
		return t.send(ctx, method, u, contentType, "", bytes.Clone(body), extra)
	}
	var buf bytes.Buffer
	buf.Grow(len(body) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, err := zw.Write(body)
	if err == nil {
		err = zw.Close()
	}
	gzipWriters.Put(zw)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return t.send(ctx, method, u, contentType, "gzip", buf.Bytes(), extra)
}

// send makes one request with payload as it is (encoded as contentEncoding says; nil: no
// body). The transport owns payload from then on.
func (t *transport) send(ctx context.Context, method, u, contentType, contentEncoding string, payload []byte, extra http.Header) (*response, error) {
	if t.closed.Load() {
		return nil, errors.New("sink closed")
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	req.Header.Set("User-Agent", "logcap")
	resp, err := t.client.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			ue.URL = config.MaskURL(ue.URL) // logged on every failed write: no ?api_key= in clear
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("status %d: read body: %w", resp.StatusCode, err)
	}
	// Drain a little more so an over-long answer can still give its connection back.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// close releases the pool's idle connections; later requests are refused.
func (t *transport) close() {
	t.closed.Store(true)
	t.tr.CloseIdleConnections()
}

// statusError classifies an HTTP answer the way every sink here does: 2xx is success;
// 408, 429 and 5xx are transient (carrying Retry-After when given); any other status is
// permanent, because sending the same request again gets the same answer.
func statusError(r *response, now time.Time) error {
	if r.status >= 200 && r.status < 300 {
		return nil
	}
	err := fmt.Errorf("status %d: %s", r.status, snippet(r.body))
	if r.status == http.StatusRequestTimeout || r.status == http.StatusTooManyRequests || r.status >= 500 {
		if d, ok := parseRetryAfter(r.header.Get("Retry-After"), now); ok {
			return &RetryAfterError{After: d, Err: err}
		}
		return err
	}
	if r.status >= 300 && r.status < 400 {
		err = fmt.Errorf("status %d: redirect to %q: configure the final URL", r.status, r.header.Get("Location"))
	}
	return Permanent(err)
}

// snippet is the start of an answer's body, as much as an error message should carry.
func snippet(b []byte) string {
	if len(b) > errorBodyBytes {
		b = b[:errorBodyBytes]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// probe is the Check every HTTP sink makes. Only a transport error (refused, reset, timeout)
// or an answer that says "not now" — 429, 502, 503, 504 — means down. Any other answer,
// 501 and 500 included, proves the destination is reachable and serving: many receivers do
// not implement HEAD (Python's http.server answers 501) or GET on the path, and the pending
// batch's write is the real probe. Counting a 501 as down left the http sink waiting forever.
func (t *transport) probe(ctx context.Context, method, u string) error {
	r, err := t.do(ctx, method, u, "", nil, nil)
	if err != nil {
		return err
	}
	if destinationDown(r.status) {
		return fmt.Errorf("status %d: %s", r.status, snippet(r.body))
	}
	return nil
}

// destinationDown is whether a status says the destination cannot take writes now.
func destinationDown(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// mergeFailures combines per-record failures found before sending (encoding, templates)
// with the outcome of the request that carried the other records of the batch.
func mergeFailures(n int, bad map[int]error, sendErr error) error {
	if len(bad) == 0 {
		return sendErr
	}
	var partial *PartialError
	if errors.As(sendErr, &partial) {
		for i, err := range partial.Failed {
			bad[i] = err
		}
		return &PartialError{Failed: bad}
	}
	if sendErr != nil {
		for i := 0; i < n; i++ {
			if _, ok := bad[i]; !ok {
				bad[i] = sendErr
			}
		}
	}
	return &PartialError{Failed: bad}
}

// defaultConcurrency is the writes an HTTP sink keeps in flight by default: enough to keep
// the destination busy while the next batch is fetched, decoded and encoded (with one, the
// store and logcap took turns: ~40 MB/s into VictoriaLogs on loopback, make bench).
const defaultConcurrency = 4

// Concurrency: the HTTP sinks are safe for concurrent writes (net/http's client is; the
// loki sink's label-value set has its lock).
func (*LokiSink) Concurrency() int          { return defaultConcurrency }
func (*ElasticsearchSink) Concurrency() int { return defaultConcurrency }
func (*HTTPSink) Concurrency() int          { return defaultConcurrency }
func (*OTLPSink) Concurrency() int          { return defaultConcurrency }

var (
	_ Concurrent = (*LokiSink)(nil)
	_ Concurrent = (*ElasticsearchSink)(nil)
	_ Concurrent = (*HTTPSink)(nil)
)
