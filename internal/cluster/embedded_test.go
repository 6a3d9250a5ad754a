package cluster

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/streams"
)

// Three logcap nodes, LOGS with three replicas; node1 tails a file through a 100,000-line
// burst. node2, made the LOGS leader first (the worst case: a Raft election must happen), is
// killed with SIGKILL mid-burst. Every line is stored exactly once; the publish stall is
// measured. node2 restarts, catches up, and its own copy of LOGS holds every line.
func TestEmbeddedClusterKillLeaderNotTailing(t *testing.T) {
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	nodes := embeddedCluster(t, [3]string{sourceBlock(filepath.Join(logs, "*.log")), "", ""})
	startAll(t, nodes...)
	tailer, victim, survivor := nodes[0], nodes[1], nodes[2]
	nc, js := connect(t, survivor.url(), survivor.logcap(t))

	// What logcap provisions on a cluster: three replicas everywhere, and no direct gets on
	// LOGS, so positions (the last message per subject) are read from the leader.
	if r, direct := replicasOf(t, js, "LOGS"); r != 3 || direct {
		t.Fatalf("LOGS: replicas %d, allow_direct %v; want 3, false", r, direct)
	}
	if r, _ := replicasOf(t, js, "DEADLETTER"); r != 3 {
		t.Fatalf("DEADLETTER: replicas %d, want 3", r)
	}
	natstest.Eventually(t, 30*time.Second, func() error {
		_, err := streamInfo(t.Context(), js, "KV_"+streams.PositionsBucket)
		return err
	})
	if r, _ := replicasOf(t, js, "KV_"+streams.PositionsBucket); r != 3 {
		t.Fatalf("KV %s: replicas %d, want 3", streams.PositionsBucket, r)
	}

	makeLeader(t, nc, js, "LOGS", victim.name)
	killedAt := burst(t, path, victim.proc.Kill9)

	ta := readAll(t, js, "logs.file.>", burstLines, 90*time.Second)
	ta.check(t, "kill -9 of the LOGS leader (not tailing)")
	spanning, largest, median := ta.stall(killedAt)
	slow, total := slowPublishes(t, tailer.adminPort)
	si, err := streamInfo(t.Context(), js, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	election := "not found in the logs"
	if at, ok := electedAt("LOGS", killedAt, tailer.proc.Logs(), survivor.proc.Logs()); ok {
		election = at.Sub(killedAt).Round(time.Millisecond).String()
	}
	t.Logf("publish stall: gap across the kill %v, largest gap %v, median gap %v; %d of %d chunk publishes took > 1s; new leader %s elected after %s",
		spanning.Round(time.Millisecond), largest.Round(time.Millisecond), median.Round(time.Millisecond), slow, total, si.Cluster.Leader, election)

	victim.proc = proctest.Start(t, victim.cfg)
	restarted := time.Now()
	victim.waitReady(t)
	took := waitCurrent(t, js, "LOGS", victim.name, 60*time.Second)
	t.Logf("%s ready %v after restart, its LOGS replica current %v later", victim.name,
		took.Round(time.Millisecond), (time.Since(restarted) - took).Round(time.Millisecond))
	// Current by the leader's account; its own copy must say the same.
	ta = readFrom(t, js, victim.name, "logs.file.>", burstLines, 60*time.Second)
	ta.check(t, "the restarted node's copy")
}

// node1 tails the file and leads LOGS; it is killed with SIGKILL mid-burst, the burst goes
// on, node1 restarts: it resumes from the last chunk the cluster stored for the file (read
// from the new leader, not from its own possibly stale replica), and nothing is lost or
// duplicated.
func TestEmbeddedClusterKillTailingNode(t *testing.T) {
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	nodes := embeddedCluster(t, [3]string{sourceBlock(filepath.Join(logs, "*.log")), "", ""})
	startAll(t, nodes...)
	tailer, survivor := nodes[0], nodes[1]
	nc, js := connect(t, survivor.url(), survivor.logcap(t))

	makeLeader(t, nc, js, "LOGS", tailer.name)
	burst(t, path, tailer.proc.Kill9)
	var before *jetstream.StreamInfo
	natstest.Eventually(t, 30*time.Second, func() error { // the stream may still be electing
		var err error
		before, err = streamInfo(t.Context(), js, "LOGS")
		return err
	})

	tailer.proc = proctest.Start(t, tailer.cfg)
	restarted := time.Now()
	tailer.waitReady(t)
	ta := readAll(t, js, "logs.file.>", burstLines, 90*time.Second)
	t.Logf("%d chunks stored when the tailing node came back; every line stored %v after its restart",
		before.State.Msgs, time.Since(restarted).Round(time.Millisecond))
	ta.check(t, "kill -9 of the tailing node, then restart")
}
