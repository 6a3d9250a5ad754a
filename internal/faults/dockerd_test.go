package faults

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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/streams"
)

// privateDockerd is a dockerd of the test's own, with the flags of .ci/dockerd.sh and roots
// of its own: restarting the shared engine would break every other Docker test running at
// the same time (go test runs packages in parallel).
type privateDockerd struct {
	t                                    *testing.T
	base, sock, dataRoot, execRoot, logf string
	cmd                                  *exec.Cmd
}

func newPrivateDockerd(t *testing.T) *privateDockerd {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil || os.Geteuid() != 0 {
		msg := fmt.Sprintf("\n\n!!! a private dockerd needs root and dockerd in PATH (euid %d, %v)\n!!! dockerd restart test SKIPPED\n", os.Geteuid(), err)
		if os.Getenv("LOGCAP_REQUIRE_DOCKER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Short paths: containerd's sockets live under the exec root (108-byte limit).
	base, err := os.MkdirTemp("", "lcfd")
	if err != nil {
		t.Fatal(err)
	}
	d := &privateDockerd{t: t, base: base, sock: filepath.Join(base, "d.sock"), dataRoot: filepath.Join(base, "data"),
		execRoot: filepath.Join(base, "x"), logf: filepath.Join(base, "dockerd.log")}
	t.Cleanup(d.cleanup)
	return d
}

func (d *privateDockerd) host() string { return "unix://" + d.sock }

// start runs dockerd and waits until it answers; it returns a client for it.
func (d *privateDockerd) start(liveRestore bool) *client.Client {
	d.t.Helper()
	args := []string{"--host", d.host(), "--data-root", d.dataRoot, "--exec-root", d.execRoot,
		"--pidfile", filepath.Join(d.base, "dockerd.pid"), "--iptables=false", "--ip6tables=false",
		"--bridge=none", "--storage-driver=vfs"}
	if liveRestore {
		args = append(args, "--live-restore")
	}
	logf, err := os.OpenFile(d.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command("dockerd", args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	cli, err := client.New(client.WithHost(d.host()))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { cli.Close() })
	if err := waitFor(time.Minute, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		return err
	}); err != nil {
		d.t.Fatalf("private dockerd: %v\n%s", err, d.logTail())
	}
	return cli
}

// stop sends SIGTERM, the way a service manager stops dockerd, and waits for the exit.
func (d *privateDockerd) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.AfterFunc(time.Minute, func() { _ = d.cmd.Process.Kill() })
	defer timer.Stop()
	_ = d.cmd.Wait()
	d.cmd = nil
}

func (d *privateDockerd) logTail() string {
	b, _ := os.ReadFile(d.logf)
	return tail(string(b), 30)
}

func (d *privateDockerd) cleanup() {
	if d.cmd != nil {
		// Without live-restore dockerd stops the containers and its containerd itself.
		cli, err := client.New(client.WithHost(d.host()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
			if err == nil {
				for _, c := range list.Items {
					_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
				}
			}
			cancel()
			cli.Close()
		}
		d.stop()
	}
	// A live-restore dockerd leaves its containerd running: the pid is in the exec root.
	if b, err := os.ReadFile(filepath.Join(d.execRoot, "containerd", "containerd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(pid, 0) == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	// dockerd makes its data root a mount point of its own (a bind mount onto itself).
	_ = syscall.Unmount(d.dataRoot, 0)
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(d.base)) {
		d.t.Logf("leaving %s: something is still mounted below it", d.base)
		return
	}
	_ = os.RemoveAll(d.base)
}

// buildLoggen builds the loggen image into cli's engine (dockertest.Image builds into one
// engine per process, the shared one).
func buildLoggen(t *testing.T, cli *client.Client) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := t.TempDir()
	bin := filepath.Join(dir, "loggen")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "cmd", "loggen")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build loggen: %v: %s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY loggen /loggen\nENTRYPOINT [\"/loggen\"]\n")}, {"loggen", 0o755, exe}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{dockertest.ImageName}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build loggen image: %v", err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil || bytes.Contains(out, []byte(`"error`)) {
		t.Fatalf("build loggen image: %v %s", err, out)
	}
}

// dockerd stopped with SIGTERM during a burst and started again, with logcap running on:
// nothing the containers wrote is lost or duplicated in LOGS.
//
// What the containers wrote is what the engine keeps in their json-file logs, read back
// after the test: that log survives the daemon. Two ways a daemon restart goes:
//   - live-restore: the containers run on while dockerd is away (their writes block once the
//     pipe to the shim is full) and dockerd attaches to them again: every line is there.
//   - no live-restore: dockerd stops the containers; they are started again once it is back
//     (as a restart policy or an orchestrator would) and print their lines from the start.
//     The log then holds the first run's lines and the second run's.
func TestDockerdRestart(t *testing.T) {
	d := newPrivateDockerd(t)
	for _, tc := range []struct {
		name        string
		liveRestore bool
	}{{"live-restore", true}, {"containers stopped and started again", false}} {
		t.Run(tc.name, func(t *testing.T) {
			d.t = t
			cli := d.start(tc.liveRestore)
			buildLoggen(t, cli)
			containers, lines, rate := size(3, 10), size(6_000, 40_000), 500
			prefix := uniq("dockerd")
			n := newNode(t, fmt.Sprintf(`sources:
  - {name: docker, type: docker, host: %q, include_names: [%q]}
`, d.host(), prefix+"*"))
			p := n.start(t)
			dumpLogsOnFailure(t, p)
			js := n.connect(t)
			ids := make([]string, containers)
			for i := range containers {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
					Name: fmt.Sprintf("%s%02d", prefix, i),
					Config: &container.Config{Image: dockertest.ImageName,
						Cmd: []string{"-n", strconv.Itoa(lines), "-rate", strconv.Itoa(rate), "-stderr-every", "2", "-len", "80"}},
					HostConfig: &container.HostConfig{NetworkMode: "none"},
				})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = res.ID
				dockertest.Start(t, cli, res.ID)
			}
			half := lines / 2
			poll(t, time.Minute, 20*time.Millisecond, func() error {
				if s := lastSeq(t, cli, ids[0]); s < half/4 {
					return fmt.Errorf("container at stdout line %d of %d", s, half)
				}
				return nil
			})
			waitStored(t, js, 1)
			atStop := storedMsgs(t, js)
			stopped := time.Now()
			d.stop()
			stopTook := time.Since(stopped)
			cli = d.start(tc.liveRestore)
			downFor := time.Since(stopped)
			if !tc.liveRestore {
				for _, id := range ids {
					dockertest.Start(t, cli, id)
				}
			}
			poll(t, 3*time.Minute, 200*time.Millisecond, func() error {
				for _, id := range ids {
					if ok, err := dockertest.Exited(context.Background(), cli, id); err != nil || !ok {
						return fmt.Errorf("container %s still running (%v)", id[:12], err)
					}
				}
				if f, err := metric(n.adminPort, "logcap_dockermon_containers_followed"); err != nil || f != 0 {
					return fmt.Errorf("%v containers followed (%v)", f, err)
				}
				return nil
			})
			var total figures
			for i, id := range ids {
				name := fmt.Sprintf("%s%02d", prefix, i)
				wrote := dockerLines(t, cli, id)
				// What the container printed while dockerd was down passes through the shim's FIFO;
				// dockerd 20.10 has been seen to drop a line there (5999 of 6000, once in CI-like
				// runs). That loss is Docker's, before its json-file log; logcap's contract, checked
				// below, is that every line in that log reaches LOGS exactly once.
				if tc.liveRestore && (len(wrote["stdout"]) != half || len(wrote["stderr"]) != half) {
					t.Logf("%s: Docker's own log holds %d+%d of the %d+%d lines the container printed", name, len(wrote["stdout"]), len(wrote["stderr"]), half, half)
				}
				f := compareLines(wrote, logsLines(t, js, streams.SourceSubject(streams.KindDocker, "faults", name)))
				if f.lost != 0 || f.dups != 0 || f.outOfOrder != 0 {
					t.Errorf("%s: %v", name, f)
				}
				total.add(f)
			}
			t.Logf("%d containers × %d lines at %d lines/s; dockerd stopped with %d chunks stored, stop took %v, down %v: %v",
				containers, lines, rate, atStop, stopTook.Round(100*time.Millisecond), downFor.Round(100*time.Millisecond), total)
			for _, id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Logf("remove %s: %v", id[:12], err)
				}
			}
			if t.Failed() {
				t.Logf("dockerd's log:\n%s", d.logTail())
			}
			d.stop()
		})
	}
}
