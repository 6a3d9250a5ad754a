package filemon

import (
	"testing"

	"go.uber.org/zap"
)

// The monitor never matches a file of logcap's own store, whatever the glob (a /** glob
// would otherwise capture the block files it writes, forever).
func TestExcludesDataDir(t *testing.T) {
	o, err := Options{Paths: []string{"/**/*"}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m, err := New("app", o, Deps{Host: "h", Log: zap.NewNop(), DataDir: "/var/lib/logcap"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/var/lib/logcap/jetstream/$G/streams/LOGS/msgs/1.blk": true,
		"/var/lib/logcap-2/app.log":                            false,
		"/var/log/app.log":                                     false,
		"/var/lib/logcap/../other/x.log":                       false,
	} {
		if got := m.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
}
