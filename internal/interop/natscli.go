// Package interop holds the tests that read logcap's streams with the standard `nats` CLI
// (natscli v0.5.0, `make tools` puts it in ./bin), and the helper other packages' tests use
// to find and run it.
package interop

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// NatsCLI returns the path of the nats CLI: from PATH (`make test` prepends ./bin), else
// ./bin/nats of this repository. Missing, it fails the test under CI (CI or
// LOGCAP_REQUIRE_NATSCLI set) and skips it loudly otherwise.
func NatsCLI(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "nats")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "\n\n!!! the nats CLI is neither in PATH nor in ./bin: interop test SKIPPED; run `make tools` (go install github.com/nats-io/natscli/nats@v0.5.0)\n"
	if os.Getenv("CI") != "" || os.Getenv("LOGCAP_REQUIRE_NATSCLI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Nats runs the nats CLI against server url with args and returns its stdout; it fails the
// test on a non-zero exit, showing stderr. Runs are bounded (30 s) so a CLI waiting for
// messages that never come cannot hang the test.
func Nats(t testing.TB, url string, args ...string) []byte {
	t.Helper()
	out, stderr, err := RunNats(t, url, args...)
	if err != nil {
		t.Fatalf("nats %q: %v\nstderr: %s\nstdout: %s", args, err, stderr, out)
	}
	return out
}

// RunNats is Nats without the failure: stdout, stderr and the exit error.
func RunNats(t testing.TB, url string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, NatsCLI(t), append([]string{"--server", url, "--no-context"}, args...)...)
	// A user's ~/.config/nats context must not change what the test sees.
	cmd.Env = append(os.Environ(), "NATS_CONTEXT=", "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}
