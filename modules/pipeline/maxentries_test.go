package pipeline_test

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
)

// batch.max_entries bounds every request, not only the messages of a fetch: one 1 MiB chunk
// holds thousands of lines. (Filed: the first request held 5,242 records with max_entries 1000.)
func TestSinkMaxEntriesBoundsEachRequest(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	total := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := 0
		for sc := bufio.NewScanner(zr); sc.Scan(); {
			n++
		}
		mu.Lock()
		sizes = append(sizes, n)
		total += n
		mu.Unlock()
	}))
	defer srv.Close()
	e := newEnv(t)
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: hook, type: http, input: logs.>, url: %q, batch: { max_entries: 1000 } }
`, srv.URL))
	lines := make([]string, 12_000)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %06d", i)
	}
	publish(t, e.js, "/m.log", lines, 5242)
	run(t, e, cfg, fastTuning)
	natstest.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if total < len(lines) {
			return fmt.Errorf("%d of %d delivered", total, len(lines))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, n := range sizes {
		if n > 1000 {
			t.Errorf("request %d held %d records, want ≤ max_entries 1000 (sizes %v)", i, n, sizes)
			break
		}
	}
}
