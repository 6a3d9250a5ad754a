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

// A walk never enters a kernel pseudo filesystem nor logcap's store, unless a glob starts
// inside the pseudo filesystem (logs kept on /dev/shm).
func TestPruned(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		path  string
		want  bool
	}{
		{[]string{"/**"}, "/proc/1/root", true},
		{[]string{"/**"}, "/proc", true},
		{[]string{"/**"}, "/sys", true},
		{[]string{"/**"}, "/dev/shm/app", true},
		{[]string{"/**"}, "/devices", false},
		{[]string{"/**"}, "/var/log", false},
		{[]string{"/**"}, "/var/lib/logcap/jetstream", true},
		{[]string{"/dev/shm/app/*.log"}, "/dev/shm/app/a.log", false},
		{[]string{"/dev/shm/app/*.log", "/**"}, "/proc/1", true},
		{[]string{"/dev/**/*.log"}, "/dev/shm", false},
		{[]string{"/var/lib/logcap/**"}, "/var/lib/logcap/jetstream/x", true},
	} {
		o, err := Options{Paths: tc.paths}.WithDefaults()
		if err != nil {
			t.Fatal(err)
		}
		m, err := New("app", o, Deps{Host: "h", Log: zap.NewNop(), DataDir: "/var/lib/logcap"})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.pruned(tc.path); got != tc.want {
			t.Errorf("paths %q: pruned(%q) = %v, want %v", tc.paths, tc.path, got, tc.want)
		}
	}
}
