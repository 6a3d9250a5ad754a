// The targets of issues #13 (memory) and #17 (processors), judged on the rows of the same run.

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

// Issue #17's targets: processors at the speed of the raw path.
const (
	targetJSON8MBps     = 120 // file → LOGS → json → PARSED → file sink, all-JSON 8-field lines
	targetJSON8CPUPerGB = 15
	targetJDRMBps       = 100 // the same through json → drop → redact
)

// memoryTargets is the table of issue #13's targets against this run's rows (empty when
// none of its rows ran). MB/s moves with the machine's load, so the unbounded peer's row of
// the same run is given beside it: the fraction of full speed the memory bound keeps.
func memoryTargets(rows []row) string {
	var t targetTable
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
			t.line(fmt.Sprintf("default config ≥ %d MB/s", targetMBps), got, r.mbps() >= targetMBps)
			t.line(fmt.Sprintf("… ≤ %d CPU-s/GB", targetCPUPerGB), fmt.Sprintf("%.1f", r.cpuPerGB()), r.cpuPerGB() <= targetCPUPerGB)
			t.line(fmt.Sprintf("… peak RSS ≤ %d MiB (aim 100)", targetRSSMiB), fmt.Sprintf("%.0f MiB", mib), mib <= targetRSSMiB)
		case strings.Contains(r.name, "backlog"):
			t.line(fmt.Sprintf("backlog peak RSS ≤ %d MiB", targetRSSMiB), fmt.Sprintf("%.0f MiB (%.1f MB/s, %.1f CPU-s/GB)", mib, r.mbps(), r.cpuPerGB()), mib <= targetRSSMiB)
		case r.idle && strings.HasPrefix(r.name, fmt.Sprintf("%d idle", targetIdleFiles)):
			t.line(fmt.Sprintf("%d idle files ≤ %d MiB", targetIdleFiles, targetIdleMiB), fmt.Sprintf("%.0f MiB", mib), mib <= targetIdleMiB)
		}
	}
	return t.String("Issue #13 (memory)")
}

// processorTargets is the table of issue #17's targets against this run's json8 and jdr rows.
func processorTargets(rows []row) string {
	var t targetTable
	for _, r := range rows {
		switch r.name {
		case json8Name:
			t.line(fmt.Sprintf("json8 ≥ %d MB/s", targetJSON8MBps), fmt.Sprintf("%.1f MB/s at load %s", r.mbps(), r.load), r.mbps() >= targetJSON8MBps)
			t.line(fmt.Sprintf("… ≤ %d CPU-s/GB", targetJSON8CPUPerGB), fmt.Sprintf("%.1f", r.cpuPerGB()), r.cpuPerGB() <= targetJSON8CPUPerGB)
		case jdrName:
			t.line(fmt.Sprintf("json → drop → redact ≥ %d MB/s", targetJDRMBps), fmt.Sprintf("%.1f MB/s at load %s", r.mbps(), r.load), r.mbps() >= targetJDRMBps)
		}
	}
	return t.String("Issue #17 (processors)")
}

// targetTable is a Markdown table of targets, measured figures and verdicts.
type targetTable struct{ b strings.Builder }

func (t *targetTable) line(target, got string, met bool) {
	verdict := "no"
	if met {
		verdict = "yes"
	}
	fmt.Fprintf(&t.b, "| %s | %s | %s |\n", target, got, verdict)
}

// String is the table under its title, or nothing when no row of it ran.
func (t *targetTable) String(title string) string {
	if t.b.Len() == 0 {
		return ""
	}
	return "\n" + title + " targets, this run:\n\n| target | measured | met |\n|---|---|---|\n" + t.b.String()
}
