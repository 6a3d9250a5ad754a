package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/natsd"
)

// natsConn is a client connection to the NATS that `logcap run` serves or uses.
type natsConn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	closed chan struct{}
}

// natsURLs says where the NATS of cfg is reachable from another process: nats.urls, else the
// embedded server's listen address. An embedded server with listen "none" (or a random
// port) is reachable only from inside its own `logcap run`.
func natsURLs(cfg *config.Config) ([]string, error) {
	if len(cfg.NATS.URLs) > 0 {
		return cfg.NATS.URLs, nil
	}
	e := cfg.NATS.Embedded
	if e == nil || e.Listen == "" {
		return nil, errors.New("nats: the config names neither nats.urls nor nats.embedded.listen")
	}
	if e.Listen == "none" {
		return nil, errors.New(`nats.embedded.listen is "none": the NATS of logcap run is in-process only, so replay cannot reach it; set nats.embedded.listen (e.g. 127.0.0.1:4222) or nats.urls`)
	}
	host, port, err := net.SplitHostPort(e.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.listen %q: %w", e.Listen, err)
	}
	if port == "0" {
		return nil, fmt.Errorf("nats.embedded.listen %q is a random port: replay cannot know it; set a fixed port", e.Listen)
	}
	// A server listening on every interface is reached on loopback.
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return []string{"nats://" + net.JoinHostPort(host, port)}, nil
}

// dialNATS connects to cfg's NATS as a client. It does not start a server: replay reads what a
// running (or stopped, if external) logcap stored. follow keeps reconnecting forever.
func dialNATS(cfg *config.Config, follow bool) (*natsConn, error) {
	urls, err := natsURLs(cfg)
	if err != nil {
		return nil, err
	}
	// logcap's own identity: the generated credentials of the embedded server in data_dir
	// (rebuild resets consumers and purges derived streams), or those of nats.urls.
	opts, err := natsd.ClientAuthOptions(cfg)
	if err != nil {
		return nil, err
	}
	c := &natsConn{closed: make(chan struct{})}
	timeout := cfg.NATS.ConnectTimeout.D()
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	opts = append(opts,
		nats.Name("logcap replay "+cfg.Node),
		nats.Timeout(timeout),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		// Async errors (slow consumer…) would otherwise go to the library's default
		// handler, which prints to stderr: the read loop sees them as errors anyway.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	)
	if follow {
		opts = append(opts, nats.MaxReconnects(-1))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect %v: %w (is logcap run running?)", urls, err)
	}
	c.NC = nc
	if c.JS, err = jetstream.New(nc); err != nil {
		c.Close(context.Background())
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return c, nil
}

// Close closes the connection and waits, bounded by ctx, until the client's goroutines end.
func (c *natsConn) Close(ctx context.Context) {
	c.NC.Close()
	select {
	case <-c.closed:
	case <-ctx.Done():
	}
}
