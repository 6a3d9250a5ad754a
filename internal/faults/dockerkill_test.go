package faults

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/streams"
)

// Containers keep logging while logcap is killed with SIGKILL and started again: every line
// each container wrote is in LOGS exactly once, in order per stream. What they wrote while
// logcap was dead is caught up from Docker's log (`since` the position LOGS holds).
func TestDockerKill9(t *testing.T) {
	cli := dockertest.Engine(t)
	dockertest.Image(t, cli)
	containers, lines, rate := size(5, 20), size(20_000, 60_000), 1000
	prefix := uniq("kill9")
	n := newNode(t, fmt.Sprintf(`sources:
  - {name: docker, type: docker, include_names: [%q]}
`, prefix+"*"))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)

	ids := make([]string, containers)
	for i := range containers {
		ids[i] = dockertest.Run(t, cli, dockertest.Spec{Name: fmt.Sprintf("%s%02d", prefix, i),
			Args: []string{"-n", strconv.Itoa(lines), "-rate", strconv.Itoa(rate), "-stderr-every", "2", "-len", "80"}})
	}
	half := lines / 2 // per stream
	progress := func(frac float64) func() error {
		return func() error {
			if s := lastSeq(t, cli, ids[0]); s < int(frac*float64(half)) {
				return fmt.Errorf("container at stdout line %d of %d", s, half)
			}
			return nil
		}
	}
	poll(t, time.Minute, 20*time.Millisecond, progress(0.25))
	waitStored(t, js, 1)
	atKill := storedMsgs(t, js)
	p.Kill9()
	poll(t, time.Minute, 20*time.Millisecond, progress(0.4)) // they log on while nobody reads
	if exited, _ := dockertest.Exited(context.Background(), cli, ids[0]); exited {
		t.Fatal("the containers stopped before logcap came back: the test no longer tests a restart while they run")
	}
	p2 := n.start(t)
	dumpLogsOnFailure(t, p2)

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
		if len(wrote["stdout"]) != half || len(wrote["stderr"]) != half {
			t.Fatalf("%s wrote %d+%d lines, want %d+%d", name, len(wrote["stdout"]), len(wrote["stderr"]), half, half)
		}
		f := compareLines(wrote, logsLines(t, js, streams.SourceSubject(streams.KindDocker, "faults", name)))
		if f.lost != 0 || f.dups != 0 || f.outOfOrder != 0 {
			t.Errorf("%s: %v", name, f)
		}
		total.add(f)
	}
	t.Logf("%d containers × %d lines at %d lines/s, kill -9 with %d chunks stored: %v", containers, lines, rate, atKill, total)
}
