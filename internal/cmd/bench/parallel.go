package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// parallelFiles is how many sources the processor-workers rows read: a processor's chunks
// are shared out to its workers by subject, so one source keeps one worker busy at most.
const parallelFiles = 4

// parallel is the processor-workers rows: the all-JSON 8-field lines split over
// parallelFiles files (as many sources), through the json processor with workers: 1 and
// workers: GOMAXPROCS, in the same run, so their ratio is measured under the same load.
func (b *bench) parallel() error {
	if !want("json8x4") {
		return nil
	}
	n := *nLines
	var inputs []string
	var size int64
	defer func() {
		for _, in := range inputs {
			os.Remove(in)
		}
	}()
	for k := range parallelFiles {
		in := filepath.Join(b.dir, "input", fmt.Sprintf("json8-%d.log", k))
		sz, err := generateWith(in, k*n/parallelFiles, (k+1)*n/parallelFiles, nil, lineJSON8)
		if err != nil {
			return err
		}
		inputs, size = append(inputs, in), size+sz
	}
	// The runs alternate between the worker counts, and each keeps its best: the machine is
	// shared, and a neighbour's burst should not land on one side of the ratio only.
	counts := []int{1, runtime.GOMAXPROCS(0)}
	best := make([]row, len(counts))
	for i := range max(1, *runs) {
		for c, w := range counts {
			name := fmt.Sprintf("%d files → LOGS → json processor (workers: %d) → PARSED → file sink, all-JSON 8-field lines", parallelFiles, w)
			r, err := e2eFiles(b.bin, b.dir, inputs, size, n, name, pipeline{steps: stepsJSON, workers: w}, "")
			if err != nil {
				return fmt.Errorf("%s (run %d): %w", name, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench:   run %d: %s\n", i+1, r.String())
			if best[c].elapsed == 0 || r.elapsed < best[c].elapsed {
				best[c] = r
			}
		}
	}
	for c := range counts {
		best[c].note += fmt.Sprintf("; %.2f× the MB/s of workers: 1", best[0].elapsed.Seconds()/best[c].elapsed.Seconds())
		if err := b.add(best[c], nil); err != nil {
			return err
		}
	}
	return nil
}
