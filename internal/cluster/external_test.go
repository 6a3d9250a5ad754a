package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/proctest"
)

// natsServer is one nats-server process of an external cluster.
type natsServer struct {
	name                        string
	dir, conf, log              string
	port, clusterPort, httpPort int
	cmd                         *exec.Cmd
}

// natsServerBinary is the nats-server `make tools` installs into ./bin, else the one on PATH.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "nats-server")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	t.Fatal("nats-server is neither in ./bin nor on PATH: run `make tools`")
	return ""
}

// externalCluster starts three nats-servers with JetStream routed into one cluster and
// waits until each one's /healthz answers 200 (JetStream meta leader known).
func externalCluster(t *testing.T) []*natsServer {
	t.Helper()
	bin := natsServerBinary(t)
	servers := make([]*natsServer, 3)
	var routes []string
	for i := range servers {
		s := &natsServer{
			name: fmt.Sprintf("ext%d", i+1), dir: t.TempDir(),
			port: proctest.FreePort(t), clusterPort: proctest.FreePort(t), httpPort: proctest.FreePort(t),
		}
		s.conf, s.log = filepath.Join(s.dir, "nats.conf"), filepath.Join(s.dir, "nats.log")
		servers[i] = s
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", s.clusterPort))
	}
	for _, s := range servers {
		conf := fmt.Sprintf(`server_name: %s
host: 127.0.0.1
port: %d
http: "127.0.0.1:%d"
log_file: %q
jetstream { store_dir: %q }
cluster { name: ext, host: 127.0.0.1, port: %d, routes: [%s] }
`, s.name, s.port, s.httpPort, s.log, filepath.Join(s.dir, "store"), s.clusterPort, strings.Join(routes, ", "))
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.start(t, bin)
	}
	for _, s := range servers {
		s.waitHealthy(t)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			if t.Failed() {
				b, _ := os.ReadFile(s.log)
				t.Logf("%s's log:\n%s", s.name, tail(string(b), 40))
			}
		}
	})
	return servers
}

func (s *natsServer) start(t *testing.T, bin string) {
	t.Helper()
	s.cmd = exec.Command(bin, "-c", s.conf)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	cmd := s.cmd
	t.Cleanup(func() { s.stop(cmd) })
}

// stop kills the process with SIGKILL and reaps it; a no-op once done.
func (s *natsServer) stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *natsServer) waitHealthy(t *testing.T) {
	t.Helper()
	natstest.Eventually(t, 60*time.Second, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /healthz: %s", s.name, resp.Status)
		}
		return nil
	})
}

// electedAt finds in the server's log when it became leader of stream after the given time.
// Lines look like "[pid] 2006/01/02 15:04:05.000000 [INF] JetStream cluster new stream leader
// for '$G > LOGS'", in local time.
func (s *natsServer) electedAt(stream string, after time.Time) (time.Time, bool) {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return time.Time{}, false
	}
	needle := fmt.Sprintf("new stream leader for '$G > %s'", stream)
	for line := range strings.Lines(string(b)) {
		_, rest, ok := strings.Cut(line, "] ")
		if !ok || !strings.Contains(rest, needle) || len(rest) < 26 {
			continue
		}
		at, err := time.ParseInLocation("2006/01/02 15:04:05.000000", rest[:26], time.Local)
		if err == nil && at.After(after) {
			return at, true
		}
	}
	return time.Time{}, false
}

// clients returns the names of the client connections the server has.
func (s *natsServer) clients(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/connz", s.httpPort))
	if err != nil {
		t.Fatalf("%s /connz: %v", s.name, err)
	}
	defer resp.Body.Close()
	var connz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&connz); err != nil {
		t.Fatalf("%s /connz: %v", s.name, err)
	}
	var names []string
	for _, c := range connz.Connections {
		names = append(names, c.Name)
	}
	return names
}

// logcap with `nats.urls` listing the three servers of an external cluster; LOGS with three
// replicas. The server logcap is connected to, made the LOGS leader first, is killed with
// SIGKILL mid-burst: logcap reconnects to another server and every line is stored exactly
// once. The server restarts and its replica catches up.
func TestExternalClusterKillServerMidBurst(t *testing.T) {
	servers := externalCluster(t)
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	dir := t.TempDir()
	adminPort := proctest.FreePort(t)
	cfg := filepath.Join(dir, "logcap.yaml")
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.url())
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`node: extnode
data_dir: %s
shutdown_timeout: 10s
nats: {urls: [%s]}
streams:
  logs: {replicas: 3}
  deadletter: {replicas: 3}
admin: {listen: "127.0.0.1:%d"}
%s`, filepath.Join(dir, "data"), strings.Join(urls, ", "), adminPort, sourceBlock(filepath.Join(logs, "*.log")))), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, cfg)
	p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort), 90*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logcap's log:\n%s", tail(p.Logs(), 60))
		}
	})

	var victim *natsServer
	natstest.Eventually(t, 10*time.Second, func() error {
		for _, s := range servers {
			for _, name := range s.clients(t) {
				if name == "logcap extnode" {
					victim = s
					return nil
				}
			}
		}
		return fmt.Errorf("no server has logcap's connection")
	})
	var survivor *natsServer
	for _, s := range servers {
		if s != victim {
			survivor = s
			break
		}
	}
	nc, js := connect(t, survivor.url())
	if r, direct := replicasOf(t, js, "LOGS"); r != 3 || direct {
		t.Fatalf("LOGS: replicas %d, allow_direct %v; want 3, false", r, direct)
	}
	makeLeader(t, nc, js, "LOGS", victim.name)

	killedAt := burst(t, path, func() { victim.stop(victim.cmd) })
	ta := readAll(t, js, "logs.file.>", burstLines, 90*time.Second)
	ta.check(t, "kill -9 of the server logcap is connected to, the LOGS leader")
	spanning, largest, median := ta.stall(killedAt)
	slow, total := slowPublishes(t, adminPort)
	election := "not found in the logs"
	for _, s := range servers {
		if at, ok := s.electedAt("LOGS", killedAt); ok && s != victim {
			election = at.Sub(killedAt).Round(time.Millisecond).String()
		}
	}
	t.Logf("publish stall: gap across the kill %v, largest gap %v, median gap %v; %d of %d chunk publishes took > 1s; new leader elected after %s",
		spanning.Round(time.Millisecond), largest.Round(time.Millisecond), median.Round(time.Millisecond), slow, total, election)

	victim.start(t, natsServerBinary(t))
	took := waitCurrent(t, js, "LOGS", victim.name, 60*time.Second)
	t.Logf("%s restarted: its LOGS replica current after %v", victim.name, took.Round(time.Millisecond))
	ta = readFrom(t, js, victim.name, "logs.file.>", burstLines, 60*time.Second)
	ta.check(t, "the restarted server's copy")
}
