package kubernetes

import (
	"slices"
	"testing"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/logcap/logcap/streams"
)

// TestFilters: which files of a pods directory a source's filters select, as the file
// monitor matches them (any of its paths, none of its excludes).
func TestFilters(t *testing.T) {
	o, err := Options{PodsDir: "/p", Namespaces: []string{"prod", "stag*"}, Containers: []string{"app", "side{car,kick}"},
		Exclude: []string{"prod/db-*/*", "*/*/sidekick"}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	fo, err := o.File()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"/p/prod_web-1_u1/app/0.log", true},
		{"/p/prod_web-1_u1/app/3.log", true},
		{"/p/prod_web-1_u1/app/0.log.20261206-070000", true},
		{"/p/prod_web-1_u1/app/0.log.20261206-070000.gz", true},
		{"/p/prod_web-1_u1/app/0.log.20261206-070000.gz.tmp", false}, // the kubelet's temporary file
		{"/p/staging_web-1_u1/sidecar/0.log", true},
		{"/p/staging_web-1_u1/sidekick/0.log", false}, // excluded
		{"/p/prod_db-0_u2/app/0.log", false},          // excluded
		{"/p/dev_web-1_u1/app/0.log", false},          // namespace not selected
		{"/p/prod_web-1_u1/other/0.log", false},       // container not selected
		{"/p/prod_web-1_u1/app/x/0.log", false},       // not the layout
	} {
		in := slices.ContainsFunc(fo.Paths, func(g string) bool { ok, _ := doublestar.PathMatch(g, tt.path); return ok })
		out := slices.ContainsFunc(fo.Exclude, func(g string) bool { ok, _ := doublestar.PathMatch(g, tt.path); return ok })
		if got := in && !out; got != tt.want {
			t.Errorf("%s: selected %v, want %v (paths %q, exclude %q)", tt.path, got, tt.want, fo.Paths, fo.Exclude)
		}
	}
}

// TestDescribe: the subject and identity of a file from its path below pods_dir.
func TestDescribe(t *testing.T) {
	fl := Flavor("/var/log/pods", 0)
	src, ref := fl.Describe("/var/log/pods/kube-system_coredns-5d_0b9e/coredns/2.log")
	if src != "kube-system/coredns-5d/coredns/2/0b9e" || ref == nil || ref.Namespace != "kube-system" || ref.Restart != "2" {
		t.Fatalf("%q %+v", src, ref)
	}
	if got := streams.SourceSubject(streams.KindKubernetes, "node-1", src); got != "logs.kubernetes.node-1.kube-system/coredns-5d/coredns/2/0b9e" {
		t.Errorf("subject %q", got)
	}
	if src, ref := fl.Describe("/var/log/pods/odd/x.log"); src != "odd/x.log" || ref != nil {
		t.Errorf("a path outside the layout: %q %+v", src, ref)
	}
}
