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
	for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
		name := fmt.Sprintf("%d files → LOGS → json processor (workers: %d) → PARSED → file sink, all-JSON 8-field lines", parallelFiles, w)
		pl := pipeline{steps: stepsJSON, workers: w}
		if err := b.best(name, func() (row, error) {
			return e2eFiles(b.bin, b.dir, inputs, size, n, name, pl, "")
		}); err != nil {
			return err
		}
	}
	return nil
}
