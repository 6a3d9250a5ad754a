package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// extNATS is the external NATS of -external-nats: a JetStream server in the driver process,
// on a fixed port and store, that is shut down and started again periodically.
type extNATS struct {
	store string
	port  int

	mu        sync.Mutex
	srv       *server.Server
	nRestarts atomic.Int64
}

func startExtNATS(store string, port int) (*extNATS, error) {
	n := &extNATS{store: store, port: port}
	return n, n.start()
}

func (n *extNATS) start() error {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.store,
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
	})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("nats-server on port %d not ready after 30s", n.port)
	}
	n.mu.Lock()
	n.srv = s
	n.mu.Unlock()
	return nil
}

func (n *extNATS) stop() {
	n.mu.Lock()
	s := n.srv
	n.srv = nil
	n.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (n *extNATS) restartEvery(period, down time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			n.stop()
			select { // the outage: logcap sees the server gone, not a blip
			case <-ctx.Done():
			case <-time.After(down):
			}
			if err := n.start(); err != nil {
				return err
			}
			n.nRestarts.Add(1)
		}
	}
}

func (n *extNATS) summary() string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf(", %d NATS restarts", n.nRestarts.Load())
}
