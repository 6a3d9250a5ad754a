package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/interop"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/natsd"
)

// Bad flag combinations exit 2 with a message naming the problem, before any connection.
func TestReplayUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "logcap.yaml")
	none := filepath.Join(dir, "none.yaml")
	for f, body := range map[string]string{
		cfg:  "nats: {embedded: {listen: 127.0.0.1:1}}\nsinks: [{name: archive, type: file, input: 'logs.>', path: /tmp/x.log}]\n",
		none: "nats: {embedded: {listen: none}}\n",
	} {
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--stdout"}, "-c FILE is required"},
		{[]string{"-c", cfg}, "choose exactly one destination"},
		{[]string{"-c", cfg, "--stdout", "--file", "x"}, "choose exactly one destination"},
		{[]string{"-c", cfg, "--stdout", "--since", "1h", "--start-seq", "3"}, "--since and --start-seq are exclusive"},
		{[]string{"-c", cfg, "--stdout", "--until", "1h", "--follow"}, "--until and --follow are exclusive"},
		{[]string{"-c", cfg, "--stdout", "--start-seq", "0"}, `--start-seq "0"`},
		{[]string{"-c", cfg, "--stdout", "--start-seq", "x"}, `--start-seq "x"`},
		{[]string{"-c", cfg, "--stdout", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"-c", cfg, "--stdout", "--since", "1h", "--until", "2h"}, "is before --since"},
		{[]string{"-c", cfg, "--stdout", "--stream", ""}, "--stream must not be empty"},
		{[]string{"-c", cfg, "--to", "loki"}, "no sink of that name (it has: [archive])"},
		{[]string{"-c", cfg, "--rebuild", "parsed", "--stdout"}, "--rebuild PROCESSOR takes no other flag"},
		{[]string{"-c", cfg, "--rebuild", "parsed"}, "no processor of that name"},
		{[]string{"-c", none, "--stdout"}, `nats.embedded.listen is "none"`},
		{[]string{"-c", filepath.Join(dir, "missing.yaml"), "--stdout"}, "missing.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"replay"}, tc.args...), &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), exitUsage, tc.want)
			}
		})
	}
}

// node is a real `logcap run` tailing DIR/logs/*.log, with a file sink "archive" whose
// input matches nothing, so that only replay writes to it.
type node struct {
	dir, cfg, url, logs string
	proc                *proctest.Proc
	js                  jetstream.JetStream
}

func startNode(t *testing.T, extra ...string) *node {
	t.Helper()
	n := &node{dir: t.TempDir()}
	n.logs = filepath.Join(n.dir, "logs")
	if err := os.MkdirAll(n.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	natsPort, adminPort := proctest.FreePort(t), proctest.FreePort(t)
	n.url = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	n.cfg = filepath.Join(n.dir, "logcap.yaml")
	if err := os.WriteFile(n.cfg, fmt.Appendf(nil, `node: web-1
data_dir: %s
shutdown_timeout: 5s
nats: {embedded: {listen: "127.0.0.1:%d"}}
admin: {listen: "127.0.0.1:%d"}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
sinks:
  - {name: archive, type: file, input: "logs.replay-only.>", path: %q, format: raw}
%s`, filepath.Join(n.dir, "data"), natsPort, adminPort, filepath.Join(n.logs, "*.log"), filepath.Join(n.dir, "out", "archive.log"), strings.Join(extra, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	n.proc = proctest.Start(t, n.cfg)
	n.proc.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort), 60*time.Second)
	// The test reads as the read-only identity logcap generated in data_dir; replay itself
	// (with -c) connects as logcap.
	n.url = interop.UserURL(t, n.url, filepath.Join(n.dir, "data"), natsd.ReaderUser)
	nc, err := nats.Connect(n.url)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	t.Cleanup(func() { nc.Close(); <-closed })
	if n.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logcap run's log:\n%s", n.proc.Logs())
		}
	})
	return n
}

// appendLines appends lines to DIR/logs/app.log and waits until LOGS holds them all
// (wantTotal lines in all), so that each call's lines land in chunks of their own.
func (n *node) appendLines(t *testing.T, lines []string, wantTotal int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(n.logs, "app.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got := n.storedLines(t); got == wantTotal {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("LOGS holds %d lines after 30s, want %d", got, wantTotal)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *node) storedLines(t *testing.T) int {
	t.Helper()
	s, err := n.js.Stream(t.Context(), "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for seq := s.CachedInfo().State.FirstSeq; seq > 0 && seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		total += bytes.Count(m.Data, []byte("\n"))
	}
	return total
}

func numbered(from, to int, tag string) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s line %05d \xfe\xff not utf-8, tab\there\n", tag, i))
	}
	return out
}

// A time range replayed into the file sink holds exactly what `nats sub --raw` prints for
// the same sequence range: the original file's bytes.
func TestReplayTimeRangeEqualsNatsSub(t *testing.T) {
	interop.NatsCLI(t)
	n := startNode(t)
	// Three bursts, each stored before the next is written: three distinct time ranges.
	n.appendLines(t, numbered(0, 100, "before"), 100)
	n.appendLines(t, numbered(100, 200, "inside"), 200)
	n.appendLines(t, numbered(200, 300, "inside"), 300)
	n.appendLines(t, numbered(300, 400, "inside"), 400)
	n.appendLines(t, numbered(400, 500, "after"), 500)

	s, err := n.js.Stream(t.Context(), "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	// The range: from the first chunk holding an "inside" line to the last one.
	var first, last uint64
	var since, until time.Time
	var wantFile []byte
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(m.Data, []byte("inside")) {
			if first == 0 {
				first, since = seq, m.Time
			}
			last, until = seq, m.Time
			wantFile = append(wantFile, m.Data...)
		}
	}
	if first == 0 {
		t.Fatal("no chunk starts with an inside line")
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "-c", n.cfg, "--to", "archive",
		"--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano)}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(n.dir, "out", "archive.log"))
	if err != nil {
		t.Fatal(err)
	}
	// nats sub has no end point (--count in natscli v0.5.0 does not stop at N messages):
	// from the range's first sequence to the end it prints the range, then the after burst.
	sub := interop.Nats(t, n.url, "sub", "--stream", "LOGS", "logs.file.>", "-T", "--raw", "--start-sequence", fmt.Sprint(first))
	after := []byte(strings.Join(numbered(400, 500, "after"), ""))
	if !bytes.Equal(append(bytes.Clone(got), after...), sub) {
		t.Fatalf("file sink after replay (%d bytes) + the after burst (%d bytes) differs from nats sub --start-sequence %d (%d bytes) at byte %d",
			len(got), len(after), first, len(sub), firstDiff(append(bytes.Clone(got), after...), sub))
	}
	// And each chunk of the range as `nats stream get --json` gives it (base64: exact bytes).
	var gets []byte
	for seq := first; seq <= last; seq++ {
		var m struct{ Data []byte }
		if err := json.Unmarshal(interop.Nats(t, n.url, "stream", "get", "LOGS", fmt.Sprint(seq), "--json"), &m); err != nil {
			t.Fatal(err)
		}
		gets = append(gets, m.Data...)
	}
	if !bytes.Equal(got, gets) {
		t.Fatalf("file sink (%d bytes) differs from nats stream get of seq %d..%d (%d bytes) at byte %d", len(got), first, last, len(gets), firstDiff(got, gets))
	}
	if !bytes.Equal(got, []byte(strings.Join(numbered(100, 400, "inside"), ""))) {
		t.Fatalf("the range is not the inside burst (%d bytes)", len(got))
	}
	if !bytes.Equal(got, wantFile) {
		t.Fatal("file sink differs from the chunks' payloads")
	}
	summary := strings.TrimSpace(stderr.String())
	if want := fmt.Sprintf("replayed 300 entries (%d bytes) from LOGS seq %d..%d in ", len(got), first, last); !strings.HasPrefix(summary, want) {
		t.Fatalf("summary %q, want prefix %q", summary, want)
	}
	t.Logf("%s; nats sub and nats stream get show the same %d bytes", summary, len(got))

	// --stdout with no range: the whole file, byte for byte, as `nats sub --all -T --raw`.
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"replay", "-c", n.cfg, "--stdout", "--subject", "logs.file.>"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	file, err := os.ReadFile(filepath.Join(n.logs, "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	all := interop.Nats(t, n.url, "sub", "--stream", "LOGS", "logs.file.>", "--all", "-T", "--raw")
	if !bytes.Equal(stdout.Bytes(), file) || !bytes.Equal(all, file) {
		t.Fatalf("replay --stdout (%d bytes), nats sub (%d bytes) and the file (%d bytes) differ", stdout.Len(), len(all), len(file))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// --follow writes what is appended while it runs and exits 0 on SIGINT, promptly.
func TestReplayFollowSIGINT(t *testing.T) {
	n := startNode(t)
	n.appendLines(t, numbered(0, 10, "early"), 10)

	outPath := filepath.Join(n.dir, "follow.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, proctest.Binary(t), "replay", "-c", n.cfg, "--stdout", "--follow")
	cmd.Stdout, cmd.Stderr = out, &stderr
	// A -race binary sleeps 1 s at exit by default: measure logcap's stop, not the detector's.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile := func(want []byte) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, _ := os.ReadFile(outPath)
			if bytes.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("replay --follow wrote %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	early := strings.Join(numbered(0, 10, "early"), "")
	waitFile([]byte(early))
	n.appendLines(t, numbered(10, 30, "late"), 30)
	waitFile([]byte(early + strings.Join(numbered(10, 30, "late"), "")))

	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	took := time.Since(began)
	var ee *exec.ExitError
	if errors.As(err, &ee) || err != nil {
		t.Fatalf("replay --follow after SIGINT: %v (after %v)\nstderr: %s", err, took, stderr.String())
	}
	if took > 5*time.Second {
		t.Fatalf("exit took %v", took)
	}
	if !strings.Contains(stderr.String(), "replayed 30 entries") {
		t.Fatalf("stderr %q", stderr.String())
	}
	t.Logf("SIGINT → exit 0 in %v; %s", took.Round(time.Millisecond), strings.TrimSpace(stderr.String()))
}

func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State
}

// A processor's stream replays as NDJSON; --rebuild purges it and waits until the running
// processor has derived it again, one derived chunk per input chunk, none twice.
func TestReplayDerivedAndRebuild(t *testing.T) {
	n := startNode(t, "processors:\n  - {name: parsed, input: \"logs.file.>\", steps: [{logfmt: {}}]}\n")
	var lines []string
	for burst := range 3 {
		var b []string
		for i := range 50 {
			b = append(b, fmt.Sprintf("level=info burst=%d i=%d msg=\"hello world\"\n", burst, i))
		}
		lines = append(lines, b...)
		n.appendLines(t, b, len(lines))
	}
	chunks := streamState(t, n.js, "LOGS").Msgs
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("PARSED derived", func() bool { return streamState(t, n.js, "PARSED").Msgs == chunks })
	before := streamState(t, n.js, "PARSED")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"replay", "-c", n.cfg, "--stream", "PARSED", "--stdout"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(out) != len(lines) {
		t.Fatalf("replay of PARSED printed %d lines, want %d", len(out), len(lines))
	}
	for i, l := range out {
		var e struct {
			Message string         `json:"message"`
			Fields  map[string]any `json:"fields"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if e.Message+"\n" != lines[i] || e.Fields["msg"] != "hello world" {
			t.Fatalf("line %d: %q (want message %q)", i, l, lines[i])
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"replay", "-c", n.cfg, "--rebuild", "parsed"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("rebuild: exit %d: %s", code, stderr.String())
	}
	summary := strings.TrimSpace(stderr.String())
	if want := fmt.Sprintf("rebuilt PARSED from LOGS: %d input messages processed; PARSED holds %d messages", chunks, chunks); !strings.HasPrefix(summary, want) {
		t.Fatalf("summary %q, want prefix %q", summary, want)
	}
	after := streamState(t, n.js, "PARSED")
	if after.Msgs != chunks || after.FirstSeq <= before.LastSeq {
		t.Fatalf("after rebuild PARSED holds %d messages from seq %d (before: %d, last seq %d)", after.Msgs, after.FirstSeq, before.Msgs, before.LastSeq)
	}
	t.Logf("%s (PARSED seq %d..%d before, %d..%d after)", summary, before.FirstSeq, before.LastSeq, after.FirstSeq, after.LastSeq)
}

// parseWhen never panics; what it accepts is a time that formats back to itself (RFC 3339)
// or lies in the past (a duration back from now).
func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"2026-11-27T13:00:00Z", "2026-11-27T13:00:00.123456789+02:00", "90m", "0s", "-5m", "1h30m", "yesterday", "", "9999999999h"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseWhen("since", s, now)
		if err != nil {
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("%q: error %v is not a usage error", s, err)
			}
			return
		}
		if _, perr := time.Parse(time.RFC3339Nano, s); perr == nil {
			return
		}
		if got.After(now) {
			t.Fatalf("%q: duration %v lies in the future", s, got)
		}
	})
}
