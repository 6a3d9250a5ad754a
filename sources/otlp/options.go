// Package otlp is the core of the OTLP receiver source (`type: otlp`): an OTLP/HTTP logs
// endpoint (POST /v1/logs, protobuf or JSON, gzip or not) whose every request is published
// into LOGS and answered only after JetStream acked it, so a sender's retry is the
// backpressure and an accepted request is never lost. It is plain code: an http.Handler
// that blocks on its publishes; modules/otlpsrc listens and serves it.
package otlp

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/sources"
)

// Type is the source type of the OTLP receiver.
const Type = "otlp"

// DefaultListen is the OTLP/HTTP port on loopback.
const DefaultListen = "127.0.0.1:4318"

func init() {
	sources.Register(Type, func(src config.Component) (any, error) { return Decode(src) })
}

// Options are an otlp source's keys (besides name and type).
type Options struct {
	// Listen is host:port for OTLP/HTTP (default 127.0.0.1:4318). A listen address that is
	// not loopback needs auth or client certificates.
	Listen string `yaml:"listen"`
	// MaxRequestBytes bounds a request's body, and the same again once decompressed
	// (default 16MiB); a bigger one is answered 413.
	MaxRequestBytes config.Size `yaml:"max_request_bytes"`
	// MaxChunkBytes bounds one published message (default 1MiB, below the server's max
	// payload): a bigger request is published as several.
	MaxChunkBytes config.Size `yaml:"max_chunk_bytes"`
	// Auth: a bearer token the senders must give (Authorization: Bearer …).
	Auth *Auth `yaml:"auth"`
	// TLS serves HTTPS; with client_ca, senders must present a certificate it signed (mTLS).
	TLS *TLS `yaml:"tls"`
	// FullWait is how long a request waits while LOGS is full (when_full: block) or the
	// memory budget is spent before it is answered 429 with Retry-After (default 1s).
	FullWait config.Duration `yaml:"full_wait"`
}

// Auth holds the bearer token.
type Auth struct {
	Bearer config.Secret `yaml:"bearer"`
}

// TLS holds the server's PEM files.
type TLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
}

// Decode reads an otlp source's options strictly and applies the defaults.
func Decode(src config.Component) (Options, error) {
	var o Options
	if err := src.Options.Decode(&o, "name", "type"); err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	if err := o.applyDefaults(); err != nil {
		return o, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return o, nil
}

func (o *Options) applyDefaults() error {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 16 << 20
	}
	if o.MaxChunkBytes == 0 {
		o.MaxChunkBytes = 1 << 20
	}
	if o.MaxChunkBytes < 4<<10 {
		return fmt.Errorf("max_chunk_bytes: at least 4KiB, got %d", o.MaxChunkBytes)
	}
	if o.FullWait == 0 {
		o.FullWait = config.Duration(1e9)
	}
	if o.Auth != nil && o.Auth.Bearer == "" {
		return errors.New("auth.bearer: empty")
	}
	if t := o.TLS; t != nil && (t.Cert == "" || t.Key == "") {
		return errors.New("tls: cert and key are required")
	}
	if o.Auth == nil && (o.TLS == nil || o.TLS.ClientCA == "") && !loopback(host) {
		return fmt.Errorf("listen %s: not a loopback address, and neither auth.bearer nor tls.client_ca is set: anyone who reaches it could write logs", o.Listen)
	}
	return nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
