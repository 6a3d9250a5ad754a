package dockermon

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/dockertest"
	"github.com/logcap/logcap/internal/natstest"
	"go.uber.org/zap"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkContainersToLogs: 20 containers × 50,000 lines of 100 bytes, from container
// stdout to LOGS. The containers are created first and started together; the clock runs
// from their start to the last line stored. CPU is this process's (monitor + embedded
// NATS), not dockerd's.
func BenchmarkContainersToLogs(b *testing.B) {
	cli := dockertest.Engine(b)
	const containers, lines, lineLen = 20, 50000, 100
	for range b.N {
		b.StopTimer()
		js := logsStream(b)
		prefix := uniq("bench")
		r := startMonitor(b, js, Options{IncludeNames: []string{prefix + "*"}}, zap.NewNop())
		ids := make([]string, containers)
		for i := range containers {
			ids[i] = dockertest.Run(b, cli, dockertest.Spec{Name: fmt.Sprintf("%s%02d", prefix, i), NoStart: true,
				Args: []string{"-n", strconv.Itoa(lines), "-len", strconv.Itoa(lineLen)}})
		}
		cpu0, t0 := cpuTime(), time.Now()
		b.StartTimer()
		for _, id := range ids {
			dockertest.Start(b, cli, id)
		}
		natstest.CheckFor(b, 10*time.Minute, 100*time.Millisecond, func() error {
			for _, id := range ids {
				if ok, err := dockertest.Exited(context.Background(), cli, id); err != nil || !ok {
					return fmt.Errorf("container %s running", id[:12])
				}
			}
			if f := r.mon.Following(); len(f) > 0 {
				return fmt.Errorf("following %d", len(f))
			}
			return nil
		})
		el, cpu := time.Since(t0), cpuTime()-cpu0
		b.StopTimer()
		total := containers * lines
		gb := float64(total*(lineLen+1+31)) / 1e9 // payload bytes incl. timestamps
		b.ReportMetric(float64(total)/el.Seconds(), "lines/s")
		b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
		b.ReportMetric(gb*1e3/el.Seconds(), "MB/s")
		r.stop(b)
		b.StartTimer()
	}
}
