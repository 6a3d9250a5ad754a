package natsd

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Client is logcap's one connection to NATS, embedded or external, shared by every
// component. Components wait for Ready before they publish or consume: with an external
// NATS that is down at start, logcap runs (and /readyz says why) until it comes up.
type Client struct {
	Conn *nats.Conn
	JS   jetstream.JetStream
	// LogsStream and DeadLetterStream are the names of the provisioned streams.
	LogsStream, DeadLetterStream string
	// Space watches the embedded server's store for a full disk (nil with an external NATS):
	// a gate for the sources and a readiness check.
	Space *StoreSpace

	readyOnce sync.Once
	ready     chan struct{}
	mu        sync.Mutex
	notReady  string // why not ready yet, for /readyz
}

// NewClient wraps an open connection. Tests build one directly around a natstest server.
func NewClient(nc *nats.Conn, js jetstream.JetStream) *Client {
	return &Client{Conn: nc, JS: js, LogsStream: "LOGS", DeadLetterStream: "DEADLETTER", ready: make(chan struct{}), notReady: "starting"}
}

// MarkReady says the connection is up and the streams exist.
func (c *Client) MarkReady() {
	c.readyOnce.Do(func() {
		c.setNotReady("")
		close(c.ready)
	})
}

// Ready is closed once the streams are provisioned.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// WaitReady blocks until Ready or ctx is done.
func (c *Client) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WhenReady wraps a goroutine's work so that it starts once the streams are provisioned
// (publishing needs them, and an external NATS may come late); a stop while it waits ends
// it cleanly.
func (c *Client) WhenReady(fn func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := c.WaitReady(ctx); err != nil {
			return nil
		}
		return fn(ctx)
	}
}

func (c *Client) setNotReady(why string) {
	c.mu.Lock()
	c.notReady = why
	c.mu.Unlock()
}

func (c *Client) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// atomicString is an atomic.Value for strings with a Swap that returns "" at first.
type atomicString struct{ v atomic.Value }

func (a *atomicString) Swap(s string) string {
	old, _ := a.v.Swap(s).(string)
	return old
}

func (a *atomicString) Store(s string) { a.v.Store(s) }

func (a *atomicString) Load() string {
	s, _ := a.v.Load().(string)
	return s
}

// NotReady returns why the client is not ready, or "" when it is (connected and provisioned).
func (c *Client) NotReady() string {
	select {
	case <-c.ready:
		if c.Conn != nil && !c.Conn.IsConnected() {
			return "nats: disconnected (" + c.Conn.Status().String() + ")"
		}
		return ""
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notReady
}
