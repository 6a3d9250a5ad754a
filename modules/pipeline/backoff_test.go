package pipeline_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/pipeline"
)

// TestSinkBackoffKey: a sink's `backoff:` shapes its retries. The pipeline's own back-off
// here is a minute; the sink asks for 10–20 ms, so three refused writes are retried within
// a second (before the key was read, the sink waited up to a minute per retry).
func TestSinkBackoffKey(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
	}{
		{"one refusal", 1},
		{"three refusals", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu             sync.Mutex
				posts, refused int
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					return // the health probe: up
				}
				mu.Lock()
				defer mu.Unlock()
				posts++
				if refused < tc.failures {
					refused++
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}))
			defer srv.Close()
			e := newEnv(t)
			cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: hook, type: http, input: logs.>, url: %q, compression: none, batch: { max_wait: 50ms },
      backoff: { initial: 10ms, max: 20ms } }
`, srv.URL))
			slow := pipeline.Tuning{BackoffBase: time.Minute, BackoffMax: time.Minute}
			pl := run(t, e, cfg, slow)
			began := time.Now()
			publish(t, e.js, "/b.log", []string{"entry"}, 1)
			natstest.Eventually(t, 10*time.Second, func() error {
				if st := pl.Stats().Sinks["hook"]; st.Entries != 1 {
					return fmt.Errorf("stats %+v", st)
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if st := pl.Stats().Sinks["hook"]; posts != tc.failures+1 || st.Retries != uint64(tc.failures) {
				t.Errorf("posts %d, stats %+v; want %d posts", posts, st, tc.failures+1)
			}
			t.Logf("delivered after %d refusals in %v", tc.failures, time.Since(began).Round(time.Millisecond))
		})
	}
}
