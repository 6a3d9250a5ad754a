package kubernetes_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/app"
)

// deployDir is deploy/kubernetes of this repository.
func deployDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	d := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "kubernetes")
	if _, err := os.Stat(d); err != nil {
		t.Fatal(err)
	}
	return d
}

func manifests(t *testing.T) []string {
	ms, _ := filepath.Glob(filepath.Join(deployDir(t), "*.yaml"))
	if len(ms) == 0 {
		t.Fatal("no manifests in deploy/kubernetes")
	}
	return ms
}

// TestManifestsKubectl: kubectl reads every manifest into API objects (offline: --local;
// its schema validation needs an API server, TestManifestsSchema does that part).
func TestManifestsKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("LOGCAP_REQUIRE_KUBECTL") == "1" {
			t.Fatal("kubectl required (LOGCAP_REQUIRE_KUBECTL=1)")
		}
		t.Skip("no kubectl")
	}
	for _, m := range manifests(t) {
		out, err := exec.Command(kubectl, "label", "--local", "--dry-run=client", "-o", "name", "-f", m, "validated=yes").CombinedOutput()
		if err != nil {
			t.Errorf("kubectl on %s: %v\n%s", filepath.Base(m), err, out)
		}
	}
}

// TestManifestsSchema decodes every manifest strictly into the Kubernetes API types and
// checks the references inside workloads (deploy/kubernetes/validate, a module of its own
// so logcap's go.mod stays free of k8s.io).
func TestManifestsSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the validator: not in -short")
	}
	cmd := exec.Command("go", append([]string{"run", "."}, manifests(t)...)...)
	cmd.Dir = filepath.Join(deployDir(t), "validate")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestManifestsConfig: the logcap.yaml in each ConfigMap is a valid logcap configuration
// (what `logcap check` says), with the variables the DaemonSet sets.
func TestManifestsConfig(t *testing.T) {
	t.Setenv("NODE_NAME", "node-1")
	t.Setenv("NATS_USER", "logcap")
	t.Setenv("NATS_PASSWORD", "secret")
	found := 0
	for _, m := range manifests(t) {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			var cm struct {
				Kind string            `yaml:"kind"`
				Data map[string]string `yaml:"data"`
			}
			if err := yaml.Unmarshal([]byte(doc), &cm); err != nil {
				t.Fatalf("%s: %v", filepath.Base(m), err)
			}
			text, ok := cm.Data["logcap.yaml"]
			if cm.Kind != "ConfigMap" || !ok {
				continue
			}
			found++
			cfg, err := config.Parse(filepath.Base(m), []byte(text))
			if err == nil {
				err = app.Validate(cfg)
			}
			if err != nil {
				t.Errorf("%s: logcap.yaml: %v", filepath.Base(m), err)
			}
		}
	}
	if found < 2 {
		t.Errorf("%d logcap configurations found in deploy/kubernetes, want the DaemonSet's and the embedded one", found)
	}
}
