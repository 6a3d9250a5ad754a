package interop_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/interop"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

// A real `logcap run` with the default nats.embedded.auth (generated): the nats CLI without
// credentials is refused; with the read-only identity, as the README shows it (--user reader
// --password from data_dir/auth/reader.password), it reads LOGS but cannot publish into
// logs.>, purge or delete the stream; logcap itself captures throughout.
func TestNatsCLIAuth(t *testing.T) {
	interop.NatsCLI(t)
	dir := t.TempDir()
	logs, data := filepath.Join(dir, "logs"), filepath.Join(dir, "data")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	natsPort, adminPort := proctest.FreePort(t), proctest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	cfg := filepath.Join(dir, "logcap.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `node: web-1
data_dir: %s
shutdown_timeout: 5s
nats: {embedded: {listen: "127.0.0.1:%d"}}
admin: {listen: "127.0.0.1:%d"}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
sinks:
  - {name: archive, type: file, format: raw, input: "logs.>", path: %q}
`, data, natsPort, adminPort, filepath.Join(logs, "*.log"), filepath.Join(dir, "archive.log")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, cfg)
	p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort), 60*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logcap run's log:\n%s", p.Logs())
		}
	})
	path := filepath.Join(logs, "app.log")
	subj := streams.SourceSubject(streams.KindFile, "web-1", path)
	first := "2026-11-27T10:00:00Z INFO one\n"
	if err := os.WriteFile(path, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(filepath.Join(data, "auth", "reader.password"))
	if err != nil {
		t.Fatal(err)
	}
	reader := []string{"--user", "reader", "--password", strings.TrimSpace(string(pw))}
	waitFor(t, "the line in the archive", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "archive.log"))
		return string(b) == first
	})

	// No credentials: refused.
	if out, stderr, err := interop.RunNats(t, url, "stream", "ls"); err == nil || !bytes.Contains(stderr, []byte("Authorization Violation")) {
		t.Errorf("nats stream ls without credentials: err %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}

	// The read-only identity reads.
	sub := interop.Nats(t, url, append(reader, "sub", "--stream", "LOGS", "logs.>", "--all", "-T", "--raw")...)
	if string(sub) != first {
		t.Fatalf("nats sub --stream LOGS as reader printed %q, want %q", sub, first)
	}
	if get := interop.Nats(t, url, append(reader, "stream", "get", "LOGS", "--last-for", subj)...); !bytes.Contains(get, []byte(first)) {
		t.Fatalf("nats stream get as reader:\n%s", get)
	}
	if info := interop.Nats(t, url, append(reader, "stream", "info", "LOGS")...); !bytes.Contains(info, []byte("Subjects: logs.>")) {
		t.Fatalf("nats stream info as reader:\n%s", info)
	}

	// … and cannot write: a forged line on the file's subject, a header-only Logcap-End, a
	// purge, a delete. Each refused.
	for _, args := range [][]string{
		{"pub", subj, "FORGED 2026-11-27T10:00:01Z forged\n"},
		{"pub", subj, "", "-H", "Logcap-End:1000000"},
		{"stream", "purge", "LOGS", "-f"},
		{"stream", "rm", "LOGS", "-f"},
		{"consumer", "rm", "LOGS", "archive", "-f"},
		{"consumer", "next", "LOGS", "archive", "--timeout", "2s"},
	} {
		out, stderr, err := interop.RunNats(t, url, append(reader, args...)...)
		t.Logf("$ nats --user reader %q: %v\n%s%s", args, err, out, stderr)
		if err == nil || !bytes.Contains(stderr, []byte("Permissions Violation")) {
			t.Errorf("nats --user reader %q: want a permissions violation, got %v:\n%s%s", args, err, out, stderr)
		}
	}

	// logcap goes on capturing; LOGS holds only what it captured.
	second := "2026-11-27T10:00:02Z INFO two\n"
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(second); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "the second line in the archive", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "archive.log"))
		return string(b) == first+second
	})
	nc, err := nats.Connect(url, interop.UserOption(t, data, natsd.LogcapUser))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	t.Cleanup(func() { nc.Close(); <-closed })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if got := subjectBytes(t, js, subj); string(got) != first+second {
		t.Fatalf("LOGS on %s holds %q, want %q", subj, got, first+second)
	}
	s, err := js.Stream(t.Context(), "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("LOGS holds %d messages, want the 2 logcap captured", n)
	}
}
