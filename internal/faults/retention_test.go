package faults

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LOGS smaller than what a sink outage leaves unacked: `streams.logs.max_bytes: 4MiB`, an
// http sink whose destination answers 503 for 10 s, 200,000 lines (about 10 MB) written at
// once. With when_full: block (the default) the sources wait while LOGS is nearly full of
// what the sink has not acked, /readyz says so, and every line arrives once the destination
// is back. With drop_oldest the discarded lines are counted, logged and reported by /readyz.
// Before: 358,722 of 440,000 lines discarded before any sink had them, in silence.
func TestRetentionWhenFull(t *testing.T) {
	for _, mode := range []string{"block", "drop_oldest"} {
		t.Run(mode, func(t *testing.T) {
			total := size(200_000, 440_000)
			srv := &outageServer{downFor: 10 * time.Second, ids: map[string]int{}, ta: newTally()}
			hs := httptest.NewServer(srv)
			t.Cleanup(hs.Close)
			logs := t.TempDir()
			n := newNode(t, fmt.Sprintf(`streams:
  logs: {max_bytes: 4MiB, max_msg_size: 1MiB, when_full: %s}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: 4KiB}
sinks:
  - {name: hook, type: http, input: logs.>, url: %q, batch: {max_entries: 5000}}
`, mode, filepath.Join(logs, "*.log"), hs.URL))
			p := n.start(t)
			dumpLogsOnFailure(t, p)
			writeLines(t, filepath.Join(logs, "app.log"), 0, total)

			var sawHeld, sawNotReady bool
			poll(t, 3*time.Minute, 100*time.Millisecond, func() error {
				if v, err := metric(n.adminPort, "logcap_stream_sources_held"); err == nil && v == 1 {
					sawHeld = true
				}
				if code, body := readyz(t, n.adminPort); code == http.StatusServiceUnavailable && strings.Contains(body, "stream LOGS") {
					sawNotReady = true
				}
				srv.mu.Lock()
				defer srv.mu.Unlock()
				if mode == "drop_oldest" {
					if d, err := metric(n.adminPort, "logcap_stream_discarded_unacked_total"); err != nil || d == 0 {
						return fmt.Errorf("no discard counted yet (%v)", err)
					}
					if !sawNotReady {
						// /readyz was read before this look at the counter: the next round
						// reads it after the discard (it reports one for 5 minutes).
						return errors.New("discards counted; /readyz not seen saying so yet")
					}
					return nil
				}
				if m := srv.ta.missing(total); m > 0 {
					return fmt.Errorf("%d lines not delivered yet", m)
				}
				return nil
			})
			srv.mu.Lock()
			missing, dups := srv.ta.missing(total), srv.ta.dups
			srv.mu.Unlock()
			discarded, _ := metric(n.adminPort, "logcap_stream_discarded_unacked_total")
			t.Logf("%s: %d lines, %d missing, %d duplicated; discarded unacked %v; sources held seen %v; /readyz 503 seen %v",
				mode, total, missing, dups, discarded, sawHeld, sawNotReady)
			if !sawNotReady {
				t.Error("/readyz never said why")
			}
			switch mode {
			case "block":
				if missing != 0 || discarded != 0 || !sawHeld {
					t.Errorf("block: %d lines missing, %v discarded, held seen %v", missing, discarded, sawHeld)
				}
			case "drop_oldest":
				if !p.WaitLog("messages lost to the stream's limits", 10*time.Second) {
					t.Error("drop_oldest: no log line about the discarded messages")
				}
			}
		})
	}
}

func readyz(t *testing.T, port int) (int, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
