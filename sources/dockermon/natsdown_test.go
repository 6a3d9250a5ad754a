package dockermon

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// A container that starts while NATS is away is followed once NATS is back, from its first
// line. Found by the soak (NATS restarted every 2 minutes): the follower gave up at once when
// it could not read its resume position, and a short-lived container was never read again.
func TestFollowWaitsForNATS(t *testing.T) {
	fe, cli := newFakeEngine(t)
	fe.add(&fakeContainer{id: "c1", name: "web", records: []fakeRecord{
		{1, t0.Add(1), "one\n"}, {2, t0.Add(2), "err\n"}, {1, t0.Add(3), "two\n"},
	}})

	opts := natstest.Options(t.TempDir())
	s1 := natstest.RunServer(t, opts)
	opts.Port = s1.Addr().(*net.TCPAddr).Port
	// As logcap connects: reconnect for ever, fail publishes at once while disconnected.
	nc, err := nats.Connect(s1.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30,
		MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	s1.Shutdown()
	s1.WaitForShutdown()
	natstest.Eventually(t, 10*time.Second, func() error {
		if nc.IsConnected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})

	// NATS comes back a second after the follow began (same port, same store).
	restarted := make(chan *server.Server, 1)
	timer := time.AfterFunc(time.Second, func() {
		s2, err := server.NewServer(opts)
		if err != nil {
			restarted <- nil
			return
		}
		s2.Start()
		restarted <- s2
	})
	t.Cleanup(func() {
		fired := !timer.Stop()
		nc.Close()
		<-closed
		// A timer that fired starts a server, whether or not it has said so yet: wait for it
		// and shut it down (a select with default missed one whose send came a moment late).
		if fired {
			if s2 := <-restarted; s2 != nil {
				s2.Shutdown()
				s2.WaitForShutdown()
			}
		}
	})

	mon, err := New(Config{Source: "docker", Host: testHost, Stream: "LOGS"}, cli, js, nil, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := mon.Follow(ctx, Target{ID: "c1", Name: "web"}, nil); err != nil {
		t.Fatalf("follow with NATS away for a second: %v", err)
	}
	t.Logf("followed in %v", time.Since(began).Round(time.Millisecond))
	got := contents(dockertest.ReadSubject(t, js, "LOGS", streams.SourceSubject(streams.KindDocker, testHost, "web")))
	if len(got) != 3 {
		t.Fatalf("LOGS holds %q, want the container's 3 lines", got)
	}
}
