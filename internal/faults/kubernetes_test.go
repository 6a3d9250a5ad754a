package faults

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/critest"
	"github.com/logcap/logcap/streams"
)

// ctrRun is one container (one attempt) of the Kubernetes tests and what it writes.
type ctrRun struct {
	pod   *critest.Pod
	c     *critest.Container
	id    string // the lines' prefix: p<pod>c<container>a<attempt>
	lines int
}

func (r ctrRun) dir() string { return filepath.Join(r.pod.LogDir, r.c.Name) }

// ref is the run's identity, as its N.log's subject names it.
func (r ctrRun) ref() streams.PodRef {
	return streams.PodRef{Namespace: r.pod.Namespace, Pod: r.pod.Name, Container: r.c.Name, Restart: strconv.Itoa(r.c.Attempt), UID: r.pod.UID}
}

// TestKubernetesKill9: containers of three pods log through a real containerd (CRI log
// files, 40,000-byte lines split by the runtime into 16 KiB parts, stdout and stderr in one
// file) while their logs are rotated twice as the kubelet does it (rename, then
// ReopenContainerLog; the older rotation gzipped), logcap is killed with SIGKILL in the
// middle, and a container restarts (1.log). Every line is in LOGS exactly once, whole, in
// order per stream, under its pod's namespace, pod and container. A pod started afterwards
// is picked up within 2 s.
func TestKubernetesKill9(t *testing.T) {
	rt := critest.Start(t)
	pods, perPod, lines := 3, 2, size(2000, 10000)
	n := newNode(t, fmt.Sprintf(`sources:
  - {name: k8s, type: kubernetes, pods_dir: %q, start_at: beginning}
`, rt.PodsDir))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)

	var runs []ctrRun
	for i := range pods {
		pod := rt.RunPod(fmt.Sprintf("ns-%d", i), fmt.Sprintf("web-%d", i), fmt.Sprintf("uid-%d-%d", i, time.Now().UnixNano()))
		for j := range perPod {
			id := fmt.Sprintf("p%dc%da0", i, j)
			c := rt.Create(pod, fmt.Sprintf("c%d", j), 0, "lines", id, strconv.Itoa(lines), "100", "40000", "1000", "hold")
			runs = append(runs, ctrRun{pod: pod, c: c, id: id, lines: lines})
		}
	}
	for _, r := range runs {
		rt.Start(r.c)
	}
	progress := func(frac float64) func() error {
		return func() error {
			for _, r := range runs {
				if w := writtenLines(r.dir()); w < int(frac*float64(r.lines)) {
					return fmt.Errorf("%s: %d of %d lines written", r.id, w, r.lines)
				}
			}
			return nil
		}
	}
	// logcap finds a new pod by its rescan (every poll_interval: the glob's directories have
	// wildcards): the first rotation waits until it reads every container's 0.log, since a
	// file first seen rotated has a subject of its own (docs/kubernetes.md), and order
	// holds per subject.
	for _, r := range runs {
		subj := streams.SourceSubject(streams.KindKubernetes, "faults", r.ref().Source())
		poll(t, 2*time.Minute, 20*time.Millisecond, func() error {
			if m, err := streams.LastMsg(context.Background(), js, "LOGS", subj); err != nil || m == nil {
				return fmt.Errorf("nothing on %s yet (%v)", subj, err)
			}
			return nil
		})
	}
	poll(t, 2*time.Minute, 20*time.Millisecond, progress(0.2))
	for _, r := range runs {
		rt.Rotate(r.pod, r.c, time.Now())
	}
	poll(t, 2*time.Minute, 20*time.Millisecond, progress(0.4))
	atKill := storedMsgs(t, js)
	p.Kill9()
	poll(t, 2*time.Minute, 20*time.Millisecond, progress(0.6)) // they log on while nobody reads
	for _, r := range runs {
		// the second rotation while logcap is dead; the first rotated file gzipped, as the
		// kubelet compresses all but the newest
		first := rotatedFiles(t, r.dir())
		rt.Rotate(r.pod, r.c, time.Now().Add(time.Second))
		gzipAsKubelet(t, first[0])
	}
	p2 := n.start(t)
	dumpLogsOnFailure(t, p2)

	// The containers hold after their last line (a rotation needs them running, however fast
	// they wrote): once LOGS has every line, they are stopped, as the kubelet stops one to
	// restart it.
	first := 0
	for _, r := range runs {
		first += r.lines
	}
	poll(t, 3*time.Minute, time.Second, func() error {
		if got := readK8s(t, js); got.whole < first {
			return fmt.Errorf("%d of %d lines in LOGS", got.whole, first)
		}
		return nil
	})
	for _, r := range runs {
		rt.Stop(r.c)
		if ok, code := rt.Exited(r.c); !ok || code != 0 {
			t.Fatalf("%s: stopped, exited %v, code %d", r.id, ok, code)
		}
	}
	// a restart: the kubelet creates the container again in the same sandbox, attempt 1
	re := runs[0]
	re.c = rt.Create(re.pod, re.c.Name, 1, "lines", "p0c0a1", strconv.Itoa(lines/10), "100", "40000", "0", "hold")
	re.id, re.lines = "p0c0a1", lines/10
	rt.Start(re.c)
	runs = append(runs, re)

	want := 0
	for _, r := range runs {
		want += r.lines
	}
	var got *k8sTally
	poll(t, 3*time.Minute, time.Second, func() error {
		got = readK8s(t, js)
		if got.whole < want {
			return fmt.Errorf("%d of %d lines in LOGS", got.whole, want)
		}
		return nil
	})
	for _, r := range runs {
		got.check(t, r)
	}
	if len(got.problems) > 0 {
		t.Errorf("%d problems, first: %s", len(got.problems), strings.Join(got.problems[:min(10, len(got.problems))], "\n"))
	}
	t.Logf("%d pods × %d containers × %d lines (every 100th 40,000 bytes) + a restart of %d: %d entries whole in LOGS, %d duplicated, %d lines in two entries (a part given out before its line ended); kill -9 with %d chunks stored",
		pods, perPod, lines, lines/10, got.whole, got.dups, got.parts, atKill)

	// a new pod: its first line in LOGS within 2 s of the container's start
	late := rt.RunPod("ns-late", "late", fmt.Sprintf("uid-late-%d", time.Now().UnixNano()))
	lc := rt.Create(late, "c0", 0, "lines", "late", "1", "0", "0", "0", "hold")
	subj := streams.SourceSubject(streams.KindKubernetes, "faults", streams.PodRef{Namespace: "ns-late", Pod: "late", Container: "c0", Restart: "0", UID: late.UID}.Source())
	began := time.Now()
	rt.Start(lc)
	poll(t, 10*time.Second, 20*time.Millisecond, func() error {
		if m, err := streams.LastMsg(context.Background(), js, "LOGS", subj); err != nil || m == nil {
			return fmt.Errorf("nothing on %s yet (%v)", subj, err)
		}
		return nil
	})
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("new pod's first line in LOGS after %v, want within 2 s", took)
	} else {
		t.Logf("new pod's first line in LOGS %v after the container started", took)
	}
}

// writtenLines counts the runtime's lines (parts included) in a container's log files.
func writtenLines(dir string) int {
	n := 0
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".gz") || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		n += bytes.Count(b, []byte{'\n'})
	}
	return n
}

// rotatedFiles lists a container's rotated (not gzipped) log files, oldest first.
func rotatedFiles(t *testing.T, dir string) []string {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "*.log.*"))
	var out []string
	for _, m := range ms {
		if !strings.HasSuffix(m, ".gz") && !strings.HasSuffix(m, ".tmp") {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("no rotated file in %s", dir)
	}
	return out
}

// gzipAsKubelet compresses a rotated log as the kubelet does: into <file>.gz.tmp, renamed
// to <file>.gz, then the original removed.
func gzipAsKubelet(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(path+".gz.tmp", buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".gz.tmp", path+".gz"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// k8sTally is what LOGS holds of the Kubernetes tests' lines, per container run id.
type k8sTally struct {
	seen     map[string]map[int]int // id → sequence number → times
	whole    int                    // distinct lines found whole
	dups     int
	parts    int // entries given out before their line ended (joined here with the next)
	problems []string
}

// readK8s reads every Kubernetes chunk of LOGS, joins the parts of a line across chunks
// (per subject and stream), and checks each line: whole (its length field), with its
// pod's identity, in order per stream.
func readK8s(t *testing.T, js jetstream.JetStream) *k8sTally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	filter := "logs.kubernetes.>"
	s, err := js.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	ta := &k8sTally{seen: map[string]map[int]int{}}
	if want == 0 {
		return ta
	}
	cons, err := js.OrderedConsumer(ctx, "LOGS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]string{} // subject/stream → the parts of a line so far
	last := map[string]int{}    // id/stream → last sequence number
	for got := uint64(0); got < want; {
		if ctx.Err() != nil {
			t.Fatalf("read LOGS: %d of %d messages after a minute", got, want)
		}
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got++
			es, err := streams.Entries(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				k := m.Subject() + "/" + e.Stream
				msg := open[k] + e.Message
				if e.Continued {
					open[k] = msg
					ta.parts++
					continue
				}
				delete(open, k)
				ta.add(e.Stream, msg, e.Fields, last)
			}
		}
	}
	for k := range open {
		ta.problems = append(ta.problems, "a line's parts never completed on "+k)
	}
	return ta
}

func (ta *k8sTally) add(stream, msg string, fields map[string]any, last map[string]int) {
	f := strings.SplitN(msg, " ", 4)
	if len(f) < 3 {
		ta.problems = append(ta.problems, fmt.Sprintf("not a test line: %.80q", msg))
		return
	}
	seq, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || n != len(msg) {
		ta.problems = append(ta.problems, fmt.Sprintf("%s: line of %d bytes, its length field says %q: not whole", f[0], len(msg), f[2]))
		return
	}
	k, _ := fields["kubernetes"].(map[string]any)
	var pod, ctr, attempt int
	if _, err := fmt.Sscanf(f[0], "p%dc%da%d", &pod, &ctr, &attempt); err == nil {
		if k["namespace"] != fmt.Sprintf("ns-%d", pod) || k["pod"] != fmt.Sprintf("web-%d", pod) ||
			k["container"] != fmt.Sprintf("c%d", ctr) || k["restart"] != strconv.Itoa(attempt) {
			ta.problems = append(ta.problems, fmt.Sprintf("%s: identity %v", f[0], k))
		}
	}
	if want := map[bool]string{true: "stderr", false: "stdout"}[seq%3 == 2]; stream != want {
		ta.problems = append(ta.problems, fmt.Sprintf("%s %d: on %s, written to %s", f[0], seq, stream, want))
	}
	if ta.seen[f[0]] == nil {
		ta.seen[f[0]] = map[int]int{}
	}
	ta.seen[f[0]][seq]++
	if ta.seen[f[0]][seq] > 1 {
		ta.dups++
		return
	}
	ta.whole++
	if l, ok := last[f[0]+stream]; ok && seq < l {
		ta.problems = append(ta.problems, fmt.Sprintf("%s %s: %d after %d: out of order", f[0], stream, seq, l))
	}
	last[f[0]+stream] = seq
}

// check fails the test unless every line of r arrived exactly once.
func (ta *k8sTally) check(t *testing.T, r ctrRun) {
	t.Helper()
	seen := ta.seen[r.id]
	missing, dups := 0, 0
	for i := range r.lines {
		switch seen[i] {
		case 0:
			missing++
		case 1:
		default:
			dups += seen[i] - 1
		}
	}
	if missing != 0 || dups != 0 || len(seen) != r.lines {
		t.Errorf("%s: %d lines written, %d distinct in LOGS, %d missing, %d duplicated", r.id, r.lines, len(seen), missing, dups)
	}
}
