package streams_test

import (
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
)

// TestDockerHeaders: the metadata headers of a container and the round trip of a stream
// position, as the Docker monitor writes them and a resume reads them.
func TestDockerHeaders(t *testing.T) {
	h := streams.DockerMetaHeader("web", "nginx:1", map[string]string{"com.docker.compose.project": "shop", "team": "core", "secret": "x"}, []string{"team", "absent"})
	want := map[string]string{streams.HdrContainerName: "web", streams.HdrImage: "nginx:1", streams.HdrComposeProject: "shop", streams.HdrLabelPrefix + "team": "core"}
	if len(h) != len(want) {
		t.Errorf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	for _, tc := range []struct {
		in      string
		ok      bool
		ts      time.Time
		count   int
		written string
	}{
		{"0:0", true, time.Time{}, 0, "0:0"},
		{"1764241118123456789:3", true, time.Unix(0, 1764241118123456789).UTC(), 3, "1764241118123456789:3"},
		{"", false, time.Time{}, 0, ""},
		{"x:1", false, time.Time{}, 0, ""},
		{"1:-2", false, time.Time{}, 0, ""},
	} {
		ts, n, err := streams.ParseStreamPos(tc.in)
		if (err == nil) != tc.ok || !ts.Equal(tc.ts) || n != tc.count {
			t.Errorf("streams.ParseStreamPos(%q) = %v %d %v", tc.in, ts, n, err)
		}
		if tc.ok && streams.FormatStreamPos(ts, n) != tc.written {
			t.Errorf("streams.FormatStreamPos(%v, %d) = %q", ts, n, streams.FormatStreamPos(ts, n))
		}
	}
}
