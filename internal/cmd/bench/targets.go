// The memory targets of issue #13, judged on the rows of the same run.

package main

import (
	"fmt"
	"strings"
)

// Issue #13's targets: the default config at full speed in a node agent's memory.
const (
	targetMBps      = 150 // file → LOGS → file sink, MB/s (on a quiet machine)
	targetCPUPerGB  = 10  // the same, CPU-s/GB
	targetRSSMiB    = 128 // its peak RSS, and the backlog's (aim: 100)
	targetIdleMiB   = 40  // 1,000 idle tailed files
	targetIdleFiles = 1000
)

// memoryTargets is the table of issue #13's targets against this run's rows (empty when
// none of its rows ran). MB/s moves with the machine's load, so the unbounded peer's row of
// the same run is given beside it: the fraction of full speed the memory bound keeps.
func memoryTargets(rows []row) string {
	var b strings.Builder
	line := func(target, got string, met bool) {
		verdict := "no"
		if met {
			verdict = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, got, verdict)
	}
	var peer *row
	for i := range rows {
		if rows[i].name == unboundedName {
			peer = &rows[i]
		}
	}
	for _, r := range rows {
		mib := float64(r.rssKiB) / 1024
		switch {
		case r.name == rawPathName:
			got := fmt.Sprintf("%.1f MB/s at load %s", r.mbps(), r.load)
			if peer != nil {
				got += fmt.Sprintf(" (%.2f × the unbounded peer's %.1f MB/s, %.1f CPU-s/GB, %.0f MiB)",
					r.mbps()/peer.mbps(), peer.mbps(), peer.cpuPerGB(), float64(peer.rssKiB)/1024)
			}
			line(fmt.Sprintf("default config ≥ %d MB/s", targetMBps), got, r.mbps() >= targetMBps)
			line(fmt.Sprintf("… ≤ %d CPU-s/GB", targetCPUPerGB), fmt.Sprintf("%.1f", r.cpuPerGB()), r.cpuPerGB() <= targetCPUPerGB)
			line(fmt.Sprintf("… peak RSS ≤ %d MiB (aim 100)", targetRSSMiB), fmt.Sprintf("%.0f MiB", mib), mib <= targetRSSMiB)
		case strings.Contains(r.name, "backlog"):
			line(fmt.Sprintf("backlog peak RSS ≤ %d MiB", targetRSSMiB), fmt.Sprintf("%.0f MiB (%.1f MB/s, %.1f CPU-s/GB)", mib, r.mbps(), r.cpuPerGB()), mib <= targetRSSMiB)
		case r.idle && strings.HasPrefix(r.name, fmt.Sprintf("%d idle", targetIdleFiles)):
			line(fmt.Sprintf("%d idle files ≤ %d MiB", targetIdleFiles, targetIdleMiB), fmt.Sprintf("%.0f MiB", mib), mib <= targetIdleMiB)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "\nIssue #13 (memory) targets, this run:\n\n| target | measured | met |\n|---|---|---|\n" + b.String()
}
