package natsd_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/natsd"
)

// authConfig is an embedded server on a random loopback port with a sink and a processor,
// whose durable consumers the reader must not touch.
func authConfig(t *testing.T) *config.Config {
	cfg := baseConfig(t)
	cfg.NATS.Embedded.Listen = "127.0.0.1:0"
	cfg.Sinks = []config.Component{{Name: "archive", Type: "file", Input: "logs.>"}}
	cfg.Processors = []config.Processor{{Name: "parsed", Input: "logs.>", Stream: "PARSED"}}
	return cfg
}

// dial connects to url with opts and closes the connection at the end of the test.
func dial(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	closed := make(chan struct{})
	opts = append(opts, nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		nc.Close()
		<-closed
	})
	return nc, nil
}

func TestEmbeddedAuthRefusesAnonymous(t *testing.T) {
	cfg := authConfig(t)
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := c.Conn.ConnectedUrl()
	if _, err := dial(t, url); err == nil || !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous client: got %v, want an authorization violation", err)
	}
	if _, err := dial(t, url, nats.UserInfo(natsd.LogcapUser, "wrong")); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong password: got %v, want an authorization violation", err)
	}
	// The generated files: a 0700 directory, 0600 files, a password each.
	if fi, err := os.Stat(natsd.AuthDir(cfg.DataDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("auth dir: %v %v, want mode 0700", fi.Mode(), err)
	}
	for _, u := range []string{natsd.LogcapUser, natsd.ReaderUser} {
		fi, err := os.Stat(natsd.PasswordFile(cfg.DataDir, u))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s password file: %v %v, want mode 0600", u, fi.Mode(), err)
		}
		o, err := natsd.UserOption(cfg.DataDir, u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dial(t, url, o); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
}

func TestEmbeddedAuthReader(t *testing.T) {
	cfg := authConfig(t)
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// logcap itself publishes and owns the sink's durable consumer.
	for i := range 3 {
		if _, err := c.JS.Publish(ctx, "logs.file.t.app", []byte{byte('a' + i)}); err != nil {
			t.Fatalf("logcap publish: %v", err)
		}
	}
	if _, err := c.JS.CreateOrUpdateConsumer(ctx, "LOGS", jetstream.ConsumerConfig{Durable: "archive", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatalf("logcap consumer: %v", err)
	}

	o, err := natsd.UserOption(cfg.DataDir, natsd.ReaderUser)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := dial(t, c.Conn.ConnectedUrl(), o)
	if err != nil {
		t.Fatalf("reader connect: %v", err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}

	// What it may do: stream info, message get, an ordered consumer of its own.
	s, err := js.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatalf("reader stream info: %v", err)
	}
	if m, err := s.GetMsg(ctx, 2); err != nil || string(m.Data) != "b" {
		t.Fatalf("reader get msg 2: %v %v", m, err)
	}
	if ci, err := s.Consumer(ctx, "archive"); err != nil || ci.CachedInfo().NumPending != 3 {
		t.Fatalf("reader: info of consumer archive: %v", err)
	}
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("reader ordered consumer: %v", err)
	}
	var got []string
	for range 3 {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reader next: %v", err)
		}
		got = append(got, string(m.Data()))
	}
	if strings.Join(got, "") != "abc" {
		t.Fatalf("reader read %q, want abc", got)
	}

	// What it may not do: each refused request fails (a permissions violation, or no
	// answer within the 1 s default timeout).
	bg := context.Background()
	if _, err := js.Publish(bg, "logs.file.t.app", []byte("forged")); err == nil {
		t.Error("reader published into logs.>")
	}
	if err := nc.Publish("logs.file.t.app", []byte("forged")); err == nil {
		_ = nc.Flush()
	}
	if err := s.Purge(bg); err == nil {
		t.Error("reader purged LOGS")
	}
	if err := js.DeleteStream(bg, "LOGS"); err == nil {
		t.Error("reader deleted LOGS")
	}
	if _, err := js.UpdateStream(bg, jetstream.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}, MaxMsgs: 1}); err == nil {
		t.Error("reader updated LOGS")
	}
	if err := s.DeleteMsg(bg, 1); err == nil {
		t.Error("reader deleted a message of LOGS")
	}
	if _, err := js.CreateStream(bg, jetstream.StreamConfig{Name: "FORGED", Subjects: []string{"forged.>"}}); err == nil {
		t.Error("reader created a stream")
	}
	if err := s.DeleteConsumer(bg, "archive"); err == nil {
		t.Error("reader deleted logcap's consumer archive")
	}
	if _, err := s.CreateOrUpdateConsumer(bg, jetstream.ConsumerConfig{Durable: "archive", AckPolicy: jetstream.AckNonePolicy}); err == nil {
		t.Error("reader updated logcap's consumer archive")
	}
	if _, err := s.CreateOrUpdateConsumer(bg, jetstream.ConsumerConfig{Durable: "parsed", AckPolicy: jetstream.AckNonePolicy}); err == nil {
		t.Error("reader created logcap's processor consumer parsed")
	}
	// Pull from the sink's consumer: the request is refused, nothing is delivered.
	if msgs, err := nc.Request("$JS.API.CONSUMER.MSG.NEXT.LOGS.archive", []byte(`{"batch":1,"no_wait":true}`), time.Second); err == nil {
		t.Errorf("reader pulled from logcap's consumer archive: %q %v", msgs.Data, msgs.Header)
	}

	// Nothing changed: three messages, the consumer as logcap made it, none delivered.
	si, err := c.JS.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	if st := si.CachedInfo().State; st.Msgs != 3 || st.LastSeq != 3 {
		t.Errorf("LOGS after the reader: %d messages, last seq %d; want 3, 3", st.Msgs, st.LastSeq)
	}
	ci, err := si.Consumer(ctx, "archive")
	if err != nil {
		t.Fatal(err)
	}
	if info := ci.CachedInfo(); info.Config.AckPolicy != jetstream.AckExplicitPolicy || info.Delivered.Stream != 0 {
		t.Errorf("consumer archive after the reader: ack %v, delivered %d", info.Config.AckPolicy, info.Delivered.Stream)
	}
	if _, err := c.JS.Stream(ctx, "FORGED"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream FORGED: %v", err)
	}
}

// A push consumer is a way to make the server publish for the reader: one on DEADLETTER
// delivering into logs.> made LOGS store what it delivered, given a core subscription of the
// reader's there as the interest it needs. The reader may subscribe to _INBOX.> only: the
// subscription is refused, the consumer stays inactive, LOGS holds only logcap's messages.
func TestEmbeddedAuthReaderPushConsumers(t *testing.T) {
	cfg := authConfig(t)
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := c.JS.Publish(ctx, "logs.file.t.app", []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.JS.Publish(ctx, "deadletter.t", []byte("dead")); err != nil {
			t.Fatal(err)
		}
	}
	o, err := natsd.UserOption(cfg.DataDir, natsd.ReaderUser)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := dial(t, c.Conn.ConnectedUrl(), o)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A subscription of its own would be the interest a push consumer needs to deliver at
	// all: refused.
	if _, err := nc.SubscribeSync("logs.file.t.forged"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The server answers the SUB with -ERR before the PONG of the flush.
	if err := nc.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("reader subscribing to logs.file.t.forged: got %v, want a permissions violation", err)
	}
	for _, p := range []struct{ stream, name, deliver string }{
		{"DEADLETTER", "injector", "logs.file.t.forged"},
	} {
		if _, err := js.CreateOrUpdatePushConsumer(ctx, p.stream, jetstream.ConsumerConfig{Durable: p.name, DeliverSubject: p.deliver, AckPolicy: jetstream.AckNonePolicy}); err != nil {
			continue // refused: fine too
		}
		// Without interest on its deliver subject it is inactive: nothing delivered.
		ci, err := c.JS.PushConsumer(ctx, p.stream, p.name)
		if err != nil {
			t.Fatal(err)
		}
		if info := ci.CachedInfo(); info.PushBound || info.Delivered.Stream != 0 {
			t.Fatalf("%s: bound %v, delivered %d into %s", p.name, info.PushBound, info.Delivered.Stream, p.deliver)
		}
	}
	s, err := c.JS.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().State; st.Msgs != 3 || st.LastSeq != 3 || st.NumSubjects != 1 {
		t.Fatalf("LOGS after the reader's push consumers: %+v; want the 3 messages logcap published", st)
	}
}

// The passwords survive a restart; deleting a file and restarting rotates it: the old
// password is refused.
func TestEmbeddedAuthRotate(t *testing.T) {
	cfg := authConfig(t)
	start := func() (url string, stop func()) {
		var c *natsd.Client
		app := fxtest.New(t, fx.Supply(cfg, zap.NewNop()), natsd.Module, fx.Populate(&c), fx.NopLogger)
		app.RequireStart()
		return c.Conn.ConnectedUrl(), app.RequireStop
	}
	_, stop := start()
	pw1, err := natsd.ReadPassword(cfg.DataDir, natsd.ReaderUser)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	_, stop = start()
	if pw, err := natsd.ReadPassword(cfg.DataDir, natsd.ReaderUser); err != nil || pw != pw1 {
		t.Fatalf("after a restart: %v, password changed: %v", err, pw != pw1)
	}
	stop()
	if err := os.Remove(natsd.PasswordFile(cfg.DataDir, natsd.ReaderUser)); err != nil {
		t.Fatal(err)
	}
	url, stop := start()
	defer stop()
	pw2, err := natsd.ReadPassword(cfg.DataDir, natsd.ReaderUser)
	if err != nil || pw2 == pw1 {
		t.Fatalf("after deleting the file: %v, same password: %v", err, pw2 == pw1)
	}
	if _, err := dial(t, url, nats.UserInfo(natsd.ReaderUser, pw1)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("rotated-out password: got %v, want an authorization violation", err)
	}
	if _, err := dial(t, url, nats.UserInfo(natsd.ReaderUser, pw2)); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestEmbeddedAuthNone(t *testing.T) {
	cfg := authConfig(t)
	cfg.NATS.Embedded.Auth = config.AuthNone
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, c.Conn.ConnectedUrl()); err != nil {
		t.Fatalf("auth none: anonymous client refused: %v", err)
	}
	if _, err := os.Stat(natsd.AuthDir(cfg.DataDir)); !os.IsNotExist(err) {
		t.Errorf("auth none generated %s: %v", natsd.AuthDir(cfg.DataDir), err)
	}
}
