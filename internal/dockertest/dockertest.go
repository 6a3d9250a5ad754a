// Package dockertest gives tests a real Docker engine: reachability (skip loudly, or fail
// under LOGCAP_REQUIRE_DOCKER=1), the loggen image built locally FROM scratch (there is no
// registry), containers that are removed at cleanup, and a reader of what a subject holds.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go/jetstream"
)

// ImageName is the tag of the loggen test image.
const ImageName = "logcap-loggen:test"

// Engine returns a client for the engine at DOCKER_HOST (or the default socket). When none
// answers, the test is skipped with a loud message — or fails when LOGCAP_REQUIRE_DOCKER=1
// (CI sets it, after .ci/dockerd.sh started an engine).
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		msg := fmt.Sprintf("\n\n!!! NO DOCKER ENGINE at DOCKER_HOST=%q: %v\n!!! real-engine test SKIPPED; start one with: export DOCKER_HOST=$(bash .ci/dockerd.sh)\n", os.Getenv("DOCKER_HOST"), err)
		if os.Getenv("LOGCAP_REQUIRE_DOCKER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var (
	imageOnce sync.Once
	imageErr  error
)

// Image builds the loggen image once per process: `CGO_ENABLED=0 go build` of
// internal/cmd/loggen, in a FROM scratch image.
func Image(t testing.TB, cli *client.Client) string {
	t.Helper()
	if _, err := BuildImage(cli); err != nil {
		t.Fatalf("build %s: %v", ImageName, err)
	}
	return ImageName
}

// BuildImage is Image for programs without a testing.TB (the soak driver): it builds the
// loggen image once per process and returns its tag.
func BuildImage(cli *client.Client) (string, error) {
	imageOnce.Do(func() { imageErr = buildImage(cli) })
	return ImageName, imageErr
}

func buildImage(cli *client.Client) error {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "cmd", "loggen")
	dir, err := os.MkdirTemp("", "loggen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "loggen")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build loggen: %v: %s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// No "# syntax=" line: that would make the builder pull a frontend image.
	dockerfile := "FROM scratch\nCOPY loggen /loggen\nENTRYPOINT [\"/loggen\"]\n"
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"loggen", 0o755, exe}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{ImageName}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if bytes.Contains(out, []byte(`"errorDetail"`)) || bytes.Contains(out, []byte(`"error"`)) {
		return fmt.Errorf("image build: %s", out)
	}
	return nil
}

// Spec describes a loggen container.
type Spec struct {
	Name   string
	TTY    bool
	Args   []string // loggen flags
	Labels map[string]string
	// NoStart creates the container without starting it.
	NoStart bool
}

// Run creates and starts a loggen container (network none) and removes it at cleanup.
func Run(t testing.TB, cli *client.Client, s Spec) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       s.Name,
		Config:     &container.Config{Image: Image(t, cli), Cmd: s.Args, Tty: s.TTY, Labels: s.Labels},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatalf("create container %s: %v", s.Name, err)
	}
	t.Cleanup(func() { Remove(t, cli, res.ID) })
	if !s.NoStart {
		Start(t, cli, res.ID)
	}
	return res.ID
}

// Start starts a created container.
func Start(t testing.TB, cli *client.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", id, err)
	}
}

// Remove force-removes a container; a container already gone is fine.
func Remove(t testing.TB, cli *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "No such container") {
		t.Logf("remove container %s: %v", id, err)
	}
}

// Exited reports whether a container has stopped.
func Exited(ctx context.Context, cli *client.Client, id string) (bool, error) {
	res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return false, err
	}
	return res.Container.State != nil && !res.Container.State.Running && res.Container.State.Status != container.StateCreated, nil
}

// Entry is one entry read back from LOGS.
type Entry struct {
	Container, Stream string
	Line              []byte // "<timestamp> <content>" as published, terminator included
	Continued         bool
}

// Content is the line without its timestamp and terminator.
func (e Entry) Content() string {
	_, c, _ := bytes.Cut(streams.TrimEOL(e.Line), []byte{' '})
	return string(c)
}

// ReadSubject returns every entry stored on subject in stream, in order.
func ReadSubject(t testing.TB, js jetstream.JetStream, stream, subject string) []Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	var out []Entry
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("get %s from %d: %v", subject, seq, err)
		}
		seq = m.Sequence + 1
		c, err := streams.DecodeChunk(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatalf("decode chunk: %v", err)
		}
		c.EachEntry(func(_ int, e []byte, cont bool) {
			out = append(out, Entry{Container: c.Docker.ContainerID, Stream: c.Docker.Stream, Line: append([]byte(nil), e...), Continued: cont})
		})
	}
	return out
}
