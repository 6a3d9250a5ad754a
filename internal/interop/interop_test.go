package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/interop"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dockerEngine returns a client when an engine answers. Without one the container half of
// the test is skipped loudly (failed under LOGCAP_REQUIRE_DOCKER=1), the file half still runs.
func dockerEngine(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			t.Cleanup(func() { cli.Close() })
			return cli
		}
		cli.Close()
	}
	msg := fmt.Sprintf("\n\n!!! NO DOCKER ENGINE at DOCKER_HOST=%q: %v\n!!! the container half of the nats CLI interop test is SKIPPED\n", os.Getenv("DOCKER_HOST"), err)
	if os.Getenv("LOGCAP_REQUIRE_DOCKER") == "1" {
		t.Fatal(msg)
	}
	t.Log(msg)
	return nil
}

// subjectBytes is everything LOGS holds on subject, payloads concatenated.
func subjectBytes(t *testing.T, js jetstream.JetStream, subject string) []byte {
	t.Helper()
	s, err := js.Stream(t.Context(), "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for seq := uint64(1); ; {
		m, err := s.GetMsg(t.Context(), seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return out // ErrMsgNotFound: the end
		}
		out = append(out, m.Data...)
		seq = m.Sequence + 1
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 60s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A real `logcap run` captures a file and a container; the standard nats CLI then lists the
// streams and prints the original lines byte for byte.
func TestNatsCLIReadsTheStreams(t *testing.T) {
	interop.NatsCLI(t)
	cli := dockerEngine(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	container := fmt.Sprintf("logcap-interop-%d", time.Now().UnixNano()%1e6)
	var dockerSource string
	if cli != nil {
		dockerSource = fmt.Sprintf("  - {name: docker, type: docker, include_names: [%q]}\n", container)
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
%s`, filepath.Join(dir, "data"), natsPort, adminPort, filepath.Join(logs, "*.log"), dockerSource), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, cfg)
	p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort), 60*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logcap run's log:\n%s", p.Logs())
		}
	})
	// Everything below reads as the read-only identity logcap generated in data_dir.
	url = interop.UserURL(t, url, filepath.Join(dir, "data"), natsd.ReaderUser)
	nc, err := nats.Connect(url)
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

	// The file: written in two appends, so that LOGS holds two chunks and --last-for has a
	// "last" that is not the whole file.
	path := filepath.Join(logs, "app.log")
	subj := streams.SourceSubject(streams.KindFile, "web-1", path)
	first := "2026-11-27T10:00:00Z INFO GET /index.html 200\n2026-11-27T10:00:01Z WARN bytes \xff\xfe kept, tab\there\n"
	second := "2026-11-27T10:00:02Z ERROR POST /login 500 user=alice\n"
	if err := os.WriteFile(path, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first append stored", func() bool { return bytes.Equal(subjectBytes(t, js, subj), []byte(first)) })
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(second); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "second append stored", func() bool { return bytes.Equal(subjectBytes(t, js, subj), []byte(first+second)) })

	var dockerSubj string
	if cli != nil {
		dockertest.Run(t, cli, dockertest.Spec{Name: container, Args: []string{"-n", "3", "-prefix", "hello"}})
		dockerSubj = streams.SourceSubject(streams.KindDocker, "web-1", container)
		waitFor(t, "container lines stored", func() bool {
			return bytes.Count(subjectBytes(t, js, dockerSubj), []byte("\n")) == 3
		})
	}

	// nats stream ls
	ls := interop.Nats(t, url, "stream", "ls", "--names")
	// KV_logcap_positions is the file monitor's fallback positions bucket (a KV bucket is a stream).
	if got := strings.Fields(string(ls)); !slices.Contains(got, "LOGS") || !slices.Contains(got, "DEADLETTER") {
		t.Fatalf("nats stream ls --names: %q", ls)
	}
	t.Logf("$ nats stream ls\n%s", interop.Nats(t, url, "stream", "ls"))

	// nats stream info LOGS
	info := string(interop.Nats(t, url, "stream", "info", "LOGS"))
	for _, want := range []string{"Subjects: logs.>", "Storage: File", "Maximum Age: 3d0h0m0s"} {
		if !strings.Contains(info, want) {
			t.Errorf("nats stream info LOGS lacks %q:\n%s", want, info)
		}
	}
	t.Logf("$ nats stream info LOGS\n%s", info)

	// nats sub --raw: the file's bytes exactly, invalid UTF-8 and tabs included.
	sub := interop.Nats(t, url, "sub", "--stream", "LOGS", "logs.file.>", "--all", "-T", "--raw")
	if !bytes.Equal(sub, []byte(first+second)) {
		t.Fatalf("nats sub --raw printed %q, the file holds %q", sub, first+second)
	}
	t.Logf("$ nats sub --stream LOGS 'logs.file.>' --all -T --raw\n%s", sub)

	// nats stream get --last-for: the last chunk, i.e. the second append; --json has the
	// payload base64-encoded, exact.
	get := interop.Nats(t, url, "stream", "get", "LOGS", "--last-for", subj)
	if !bytes.Contains(get, []byte("\n\n"+second)) || !bytes.Contains(get, []byte("Logcap-Lines: 1")) {
		t.Fatalf("nats stream get --last-for %s:\n%s", subj, get)
	}
	var last struct {
		Subject string `json:"subject"`
		Data    []byte `json:"data"`
	}
	if err := json.Unmarshal(interop.Nats(t, url, "stream", "get", "LOGS", "--last-for", subj, "--json"), &last); err != nil {
		t.Fatal(err)
	}
	if last.Subject != subj || string(last.Data) != second {
		t.Fatalf("nats stream get --json: subject %q data %q", last.Subject, last.Data)
	}
	t.Logf("$ nats stream get LOGS --last-for '%s'\n%s", subj, get)

	if cli == nil {
		return
	}
	// The container: `docker logs --timestamps` lines.
	dsub := interop.Nats(t, url, "sub", "--stream", "LOGS", "logs.docker.*."+streams.EncodeToken(container), "--all", "-T", "--raw")
	lines := strings.Split(strings.TrimSuffix(string(dsub), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("nats sub of the container printed %q", dsub)
	}
	for i, l := range lines {
		ts, msg, ok := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !ok || msg != fmt.Sprintf("hello stdout %d", i+1) {
			t.Fatalf("line %d: %q", i, l)
		}
	}
	if !bytes.Equal(dsub, subjectBytes(t, js, dockerSubj)) {
		t.Fatal("nats sub of the container differs from the stored chunks")
	}
	t.Logf("$ nats sub --stream LOGS 'logs.docker.*.%s' --all -T --raw\n%s", container, dsub)
	t.Logf("$ nats stream get LOGS --last-for '%s'\n%s", dockerSubj, interop.Nats(t, url, "stream", "get", "LOGS", "--last-for", dockerSubj))
}
