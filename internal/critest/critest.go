// Package critest runs a real CRI runtime for tests: a private containerd (its own root,
// state, sockets and runc root in a temporary directory, beside any running dockerd)
// driven by crictl, so the container log files are written by containerd itself. Pods run
// host-network sandboxes (no CNI); images are FROM scratch around internal/critest/logtest,
// written as an OCI archive and imported with ctr. A test skips when containerd, ctr or
// crictl is missing, unless LOGCAP_REQUIRE_CRI=1 (set by .ci/run).
package critest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Image is the test image's name: logtest as entrypoint, "pause" as default command (the
// sandbox image is the same).
const Image = "localhost/logcap-logtest:1"

// Runtime is a running private containerd.
type Runtime struct {
	t       testing.TB
	Dir     string // the runtime's files (short: socket paths are bounded)
	Socket  string
	PodsDir string // where pods' log directories go (the kubelet's /var/log/pods)
	crictl  string
}

// Start starts a private containerd with its CRI plugin and the test image, or skips.
func Start(t testing.TB) *Runtime {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		skipOrFail(t, "needs linux and root")
	}
	bins := map[string]string{}
	for _, b := range []string{"containerd", "ctr", "crictl", "runc", "containerd-shim-runc-v2"} {
		p, err := exec.LookPath(b)
		if err != nil {
			skipOrFail(t, b+" not found (apt-get install containerd; make tools for crictl)")
		}
		bins[b] = p
	}
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{t: t, Dir: dir, Socket: filepath.Join(dir, "c.sock"), PodsDir: filepath.Join(dir, "pods"), crictl: bins["crictl"]}
	if err := os.MkdirAll(r.PodsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(r.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins["containerd"], "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf // files: exec starts no copying goroutine
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.stop(cmd, logf) })
	r.waitReady()
	r.importImage(bins["ctr"])
	return r
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("LOGCAP_REQUIRE_CRI") == "1" {
		t.Fatalf("CRI runtime required (LOGCAP_REQUIRE_CRI=1): %s", why)
	}
	t.Skip("no CRI runtime: " + why)
}

// config is containerd's: everything below Dir; restrict_oom_score_adj because this
// machine kind lacks CAP_SYS_RESOURCE (runc fails "can't get final child's PID from pipe").
func (r *Runtime) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %[7]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[8]q
    conf_dir = %[8]q
`, filepath.Join(r.Dir, "root"), filepath.Join(r.Dir, "state"), r.Socket, r.Socket+".ttrpc",
		filepath.Join(r.Dir, "opt"), Image, filepath.Join(r.Dir, "runc"), filepath.Join(r.Dir, "cni"))
}

// waitReady waits until the CRI plugin answers (about half a second here).
func (r *Runtime) waitReady() {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := r.run("info")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.Dir, "containerd.log"))
			r.t.Fatalf("containerd not ready after 30 s: %v %s\n%s", err, out, tail(log, 3000))
		}
		time.Sleep(50 * time.Millisecond) // polling the socket: it has no readiness event
	}
}

func (r *Runtime) importImage(ctr string) {
	r.t.Helper()
	bin := filepath.Join(r.Dir, "logtest")
	build := exec.Command("go", "build", "-o", bin, "github.com/logcap/logcap/internal/critest/logtest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		r.t.Fatalf("build logtest: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		r.t.Fatal(err)
	}
	archive := filepath.Join(r.Dir, "image.tar")
	if err := WriteImage(archive, Image, "logtest", b, []string{"pause"}); err != nil {
		r.t.Fatal(err)
	}
	if out, err := exec.Command(ctr, "-a", r.Socket, "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
		r.t.Fatalf("ctr images import: %v\n%s", err, out)
	}
}

// run runs crictl against the runtime.
func (r *Runtime) run(args ...string) ([]byte, error) {
	cmd := exec.Command(r.crictl, append([]string{"--runtime-endpoint", "unix://" + r.Socket, "--image-endpoint", "unix://" + r.Socket, "--timeout", "20s"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return errb.Bytes(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(errb.Bytes()))
	}
	return bytes.TrimSpace(out.Bytes()), nil
}

func (r *Runtime) must(args ...string) string {
	r.t.Helper()
	out, err := r.run(args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(out)
}

// stop removes every pod (their shims and mounts go with them), then stops containerd.
func (r *Runtime) stop(cmd *exec.Cmd, logf *os.File) {
	if out, err := r.run("rmp", "-f", "-a"); err != nil {
		r.t.Logf("crictl rmp -fa: %v %s", err, out)
	}
	cmd.Process.Kill() // no pods left: nothing of it outlives it
	cmd.Wait()
	logf.Close()
	exec.Command("umount", "-R", filepath.Join(r.Dir, "state")).Run()
	if err := os.RemoveAll(r.Dir); err != nil {
		r.t.Logf("remove %s: %v", r.Dir, err)
	}
}

func tail(b []byte, n int) []byte { return b[max(0, len(b)-n):] }

// Pod is a running pod sandbox.
type Pod struct {
	ID                   string
	Namespace, Name, UID string
	LogDir               string
	config               string // its config file, for crictl create
}

// RunPod starts a host-network pod sandbox whose logs go to PodsDir/<ns>_<name>_<uid>.
func (r *Runtime) RunPod(ns, name, uid string) *Pod {
	r.t.Helper()
	p := &Pod{Namespace: ns, Name: name, UID: uid, LogDir: filepath.Join(r.PodsDir, ns+"_"+name+"_"+uid)}
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": ns, "uid": uid, "attempt": 0},
		"log_directory": p.LogDir,
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}}, // NODE: no CNI
	}
	p.config = r.writeJSON("pod-"+ns+"-"+name+"-"+uid+".json", cfg)
	p.ID = r.must("runp", p.config)
	return p
}

// Container is a created container.
type Container struct {
	ID, Name string
	Attempt  int
}

// Create creates (not starts) container name in p running logtest with args, attempt its
// restart count (its log file is <name>/<attempt>.log).
func (r *Runtime) Create(p *Pod, name string, attempt int, args ...string) *Container {
	r.t.Helper()
	cfg := map[string]any{
		"metadata": map[string]any{"name": name, "attempt": attempt},
		"image":    map[string]any{"image": Image},
		"args":     args,
		"log_path": fmt.Sprintf("%s/%d.log", name, attempt),
	}
	file := r.writeJSON(fmt.Sprintf("ctr-%s-%s-%d.json", p.ID[:12], name, attempt), cfg)
	id := r.must("create", "--no-pull", p.ID, file, p.config)
	return &Container{ID: id, Name: name, Attempt: attempt}
}

// Start starts a created container.
func (r *Runtime) Start(c *Container) { r.t.Helper(); r.must("start", c.ID) }

// Stop stops a container (SIGTERM, then SIGKILL after the runtime's grace period).
func (r *Runtime) Stop(c *Container) { r.t.Helper(); r.must("stop", "--timeout", "10", c.ID) }

// Exited reports whether the container has exited, and its exit code.
func (r *Runtime) Exited(c *Container) (bool, int) {
	r.t.Helper()
	out := r.must("inspect", "-o", "json", c.ID)
	var st struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		r.t.Fatalf("crictl inspect %s: %v", c.ID, err)
	}
	return st.Status.State == "CONTAINER_EXITED", st.Status.ExitCode
}

// Rotate rotates a container's log as the kubelet does: rename the file to
// <file>.<YYYYMMDD-hhmmss>, then have the runtime reopen it. It returns the new name.
func (r *Runtime) Rotate(p *Pod, c *Container, at time.Time) string {
	r.t.Helper()
	cur := filepath.Join(p.LogDir, c.Name, fmt.Sprintf("%d.log", c.Attempt))
	rotated := cur + "." + at.UTC().Format("20060102-150405")
	if err := os.Rename(cur, rotated); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ReopenContainerLog(ctx, r.Socket, c.ID); err != nil {
		r.t.Fatal(err)
	}
	return rotated
}

func (r *Runtime) writeJSON(name string, v any) string {
	r.t.Helper()
	b, _ := json.Marshal(v)
	p := filepath.Join(r.Dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return p
}
