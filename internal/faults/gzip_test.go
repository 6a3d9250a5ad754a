package faults

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// kill -9 of a real `logcap run` part-way through a large .gz (include_compressed), then
// restart: every line exactly once, in order. A .gz position is an offset in the
// decompressed data; the restart decompresses again and skips to it.
func TestGzipKill9MidRead(t *testing.T) {
	total := size(1_000_000, 5_000_000)
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log.1.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	w := bufio.NewWriterSize(zw, 64<<10)
	for i := range total {
		fmt.Fprintf(w, "line %d of the gzip burst\n", i)
	}
	for _, err := range []error{w.Flush(), zw.Close(), f.Close()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := newNode(t, fmt.Sprintf("sources:\n  - {name: app, type: file, paths: [%q], start_at: beginning, include_compressed: true}\n",
		filepath.Join(logs, "*.gz")))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)
	waitStored(t, js, 5) // part-way through the file
	stored := storedMsgs(t, js)
	p.Kill9() // the embedded server dies with it

	p2 := n.start(t)
	dumpLogsOnFailure(t, p2)
	ta := readAll(t, js, "logs.file.>", total, 3*time.Minute)
	t.Logf("kill -9 with %d chunks stored", stored)
	ta.exactlyOnce(t, "LOGS", total)
}
