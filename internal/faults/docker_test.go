package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/sources/dockermon"
	"github.com/logcap/logcap/streams"
)

// streamLines holds a container's log lines ("<RFC3339Nano> <content>", no terminator)
// per stream, in the order they were read.
type streamLines map[string][]string

// dockerLines reads what the container wrote, as the engine keeps it (the json-file log):
// the ground truth a fault test compares LOGS against.
func dockerLines(t *testing.T, cli *client.Client, id string) streamLines {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", id[:12], err)
	}
	defer body.Close()
	out := streamLines{}
	dec := dockermon.NewDecoder(body, false, 64<<10)
	for {
		rec, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("logs of %s: %v", id[:12], err)
		}
		out[rec.Stream] = append(out[rec.Stream], string(rec.RawTS)+" "+string(streams.TrimEOL(rec.Line)))
	}
}

// logsLines reads every entry LOGS holds on subject: as many messages as the stream says
// the subject has.
func logsLines(t *testing.T, js jetstream.JetStream, subject string) streamLines {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	want := info.State.Subjects[subject]
	out := streamLines{}
	if want == 0 {
		return out
	}
	cons, err := js.OrderedConsumer(ctx, "LOGS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	for got := uint64(0); got < want; {
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d of %d messages after a minute", subject, got, want)
		}
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", subject, err)
		}
		for m := range batch.Messages() {
			got++
			c, err := streams.DecodeChunk(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			c.EachEntry(func(_ int, e []byte, _ bool) {
				out[c.Docker.Stream] = append(out[c.Docker.Stream], string(streams.TrimEOL(e)))
			})
		}
	}
	return out
}

// figures are a fault test's counts.
type figures struct{ written, delivered, lost, dups, outOfOrder int }

func (f *figures) add(g figures) {
	f.written += g.written
	f.delivered += g.delivered
	f.lost += g.lost
	f.dups += g.dups
	f.outOfOrder += g.outOfOrder
}

func (f figures) String() string {
	return fmt.Sprintf("written %d, delivered %d, lost %d, duplicated %d, out of order %d", f.written, f.delivered, f.lost, f.dups, f.outOfOrder)
}

// compareLines counts, per stream, the lines the container wrote that LOGS lacks (lost),
// holds more than once (duplicated), and whether LOGS keeps the container's order.
func compareLines(wrote, stored streamLines) figures {
	var f figures
	for _, st := range []string{"stdout", "stderr"} {
		w, s := wrote[st], stored[st]
		f.written += len(w)
		f.delivered += len(s)
		count := map[string]int{}
		for _, l := range s {
			count[l]++
		}
		for _, l := range w {
			switch c := count[l]; {
			case c == 0:
				f.lost++
			case c > 1:
				f.dups += c - 1
			}
			count[l] = 0 // a line written twice by the container counts once here
		}
		// Order: LOGS without its duplicates must be the container's sequence.
		seen := map[string]bool{}
		i := 0
		for _, l := range s {
			if seen[l] {
				continue
			}
			seen[l] = true
			for i < len(w) && w[i] != l {
				i++
			}
			if i == len(w) {
				f.outOfOrder++
				i = 0
			}
		}
	}
	return f
}

// seqOf returns loggen's per-stream sequence number of a line "<ts> <prefix> <stream> <seq> …".
func seqOf(line string) int {
	f := strings.Fields(line)
	if len(f) < 4 {
		return -1
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		return -1
	}
	return n
}

// lastSeq is the highest loggen sequence number the container has written on stdout so
// far (its last log line), -1 before the first.
func lastSeq(t *testing.T, cli *client.Client, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, Timestamps: true, Tail: "1"})
	if err != nil {
		return -1
	}
	defer body.Close()
	rec, err := dockermon.NewDecoder(body, false, 0).Next()
	if err != nil {
		return -1
	}
	return seqOf(string(rec.RawTS) + " " + string(rec.Line))
}

// metric reads one unlabelled-or-single-series gauge or counter from logcap's /metrics.
func metric(adminPort int, name string) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f := strings.Fields(l)
			return strconv.ParseFloat(f[len(f)-1], 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// uniq makes container names of one test run distinct from earlier runs and other tests.
func uniq(what string) string {
	return fmt.Sprintf("faults-%s-%d-", what, time.Now().UnixNano()%1_000_000_000)
}
