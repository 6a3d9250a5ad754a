package streams_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// A LOGS created elsewhere may allow direct gets (`nats stream add` does by default); any
// replica, a lagging follower too, answers those. LastMsg, the resume position of every
// source, must still ask the stream leader: the JetStream API, never $JS.API.DIRECT.GET.
func TestLastMsgAsksTheLeaderEvenWithAllowDirect(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "no direct get", true: "allow_direct"}[direct], func(t *testing.T) {
			s := natstest.RunServer(t, nil)
			nc, js := natstest.Connect(t, s)
			cfg := streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30,
				MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}.Config()
			cfg.AllowDirect = direct
			if _, err := js.CreateStream(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			var directGets, msgGets atomic.Int64
			for subj, n := range map[string]*atomic.Int64{"$JS.API.DIRECT.GET.LOGS.>": &directGets, "$JS.API.DIRECT.GET.LOGS": &directGets, "$JS.API.STREAM.MSG.GET.LOGS": &msgGets} {
				sub, err := nc.Subscribe(subj, func(*nats.Msg) { n.Add(1) })
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Unsubscribe() })
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			subj := "logs.file.n1.x"
			if _, err := js.Publish(t.Context(), subj, []byte("a\n")); err != nil {
				t.Fatal(err)
			}
			ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subj, Data: []byte("b\n")}, jetstream.WithMsgID("b"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := streams.LastMsg(t.Context(), js, "LOGS", subj)
			if err != nil {
				t.Fatal(err)
			}
			if m == nil || m.Sequence != ack.Sequence || string(m.Data) != "b\n" {
				t.Fatalf("LastMsg = %+v, want sequence %d", m, ack.Sequence)
			}
			if none, err := streams.LastMsg(t.Context(), js, "LOGS", "logs.file.n1.none"); err != nil || none != nil {
				t.Fatalf("LastMsg of an empty subject = %v, %v; want nil, nil", none, err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			natstest.Eventually(t, 5*time.Second, func() error {
				if directGets.Load() != 0 || msgGets.Load() != 2 {
					return fmt.Errorf("%d direct gets, %d leader gets; want 0 and 2", directGets.Load(), msgGets.Load())
				}
				return nil
			})
		})
	}
}
