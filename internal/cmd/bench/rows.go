// Rows of the table and its Markdown rendering.

package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

type row struct {
	name                    string
	lines                   int
	bytes                   int64
	elapsed                 time.Duration
	cpu                     float64 // seconds, user+sys
	rssKiB                  int64
	p50, p99                time.Duration
	idleCPU                 float64 // % of one core
	note                    string
	load                    string
	latency, idle, noThrput bool
}

func (r row) String() string {
	switch {
	case r.latency:
		return fmt.Sprintf("%s: p50 %v p99 %v (%d lines) %.1f cpu-s/GB rss %d KiB, load %s", r.name, r.p50, r.p99, r.lines, r.cpuPerGB(), r.rssKiB, r.load)
	case r.idle:
		return fmt.Sprintf("%s: %.2f%% of one core, load %s", r.name, r.idleCPU, r.load)
	}
	return fmt.Sprintf("%s: %.0f lines/s %.1f MB/s %.1f cpu-s/GB rss %d KiB in %v, load %s",
		r.name, r.linesPerSec(), r.mbps(), r.cpuPerGB(), r.rssKiB, r.elapsed.Round(time.Millisecond), r.load)
}

func (r row) mbps() float64        { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }
func (r row) linesPerSec() float64 { return float64(r.lines) / r.elapsed.Seconds() }
func (r row) cpuPerGB() float64    { return r.cpu / (float64(r.bytes) / 1e9) }

func render(rows []row, size int64) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "\n## logcap end-to-end benchmark (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "machine: %s; input: %d lines of %d B (%.0f MB), JSON and plain text mixed; host %s\n\n",
		machine(), *nLines, lineLen, float64(size)/1e6, host)
	// logcap's rows are compared with what JetStream alone takes in the same run (with the
	// same sync setting): the bytes go through it once, durably, before any sink sees them.
	// A processor row is also compared with the raw path (file → LOGS → file sink) of the
	// same run: what parsing costs on top of capture and delivery.
	var pub, pubAlways, rawPath float64
	for _, r := range rows {
		switch r.name {
		case pubName(false):
			pub = r.mbps()
		case pubName(true):
			pubAlways = r.mbps()
		case rawPathName:
			rawPath = r.mbps()
		}
	}
	fmt.Fprintln(&b, "| measurement | lines/s | MB/s | vs raw publish | CPU-s/GB | peak RSS MiB | load (1m) | check |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		switch {
		case r.latency:
			// CPU-s/GB at a light load: where the GC tuner (memlimit.GCTuner) runs GOGC 25
			fmt.Fprintf(&b, "| %s | %d | p50 **%.1f ms** | p99 **%.1f ms** | %.1f | %s | %s | %s |\n",
				r.name, *latRate, ms(r.p50), ms(r.p99), r.cpuPerGB(), rss(r.rssKiB), r.load, r.note)
		case r.idle:
			fmt.Fprintf(&b, "| %s | | **%.2f %% of one core** | | | %s | %s | %s |\n", r.name, r.idleCPU, rss(r.rssKiB), r.load, r.note)
		default:
			ratio, ceiling := "", pub
			if strings.Contains(r.name, "always") {
				ceiling = pubAlways
			}
			if ceiling > 0 && r.rssKiB > 0 {
				ratio = fmt.Sprintf("%.2f", r.mbps()/ceiling)
			}
			cpu := fmt.Sprintf("%.1f", r.cpuPerGB())
			if r.noThrput {
				cpu = ""
			}
			note := r.note
			if rawPath > 0 && strings.Contains(r.name, "PARSED") {
				note += fmt.Sprintf("; %.2f × raw path", r.mbps()/rawPath)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.1f | %s | %s | %s | %s | %s |\n",
				r.name, r.linesPerSec(), r.mbps(), ratio, cpu, rss(r.rssKiB), r.load, note)
		}
	}
	b.WriteString(memoryTargets(rows))
	b.WriteString(processorTargets(rows))
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func rss(kib int64) string {
	if kib == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", float64(kib)/1024)
}
