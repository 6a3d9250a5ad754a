package sources_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/sources"
)

type testOpts struct {
	Path string `yaml:"path"`
}

func init() {
	sources.Register("test", func(src config.Component) (any, error) {
		var o testOpts
		if err := src.Options.Decode(&o, "name", "type"); err != nil {
			return nil, fmt.Errorf("source %s: %w", src.Name, err)
		}
		if o.Path == "" {
			return nil, errors.New("path: required")
		}
		return o, nil
	})
}

func component(t *testing.T, name, typ string, opts map[string]any) config.Component {
	t.Helper()
	opts["name"], opts["type"] = name, typ
	o, err := config.OptionsFrom(opts)
	if err != nil {
		t.Fatal(err)
	}
	return config.Component{Name: name, Type: typ, Options: o}
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		srcs    []config.Component
		want    string // the selected sources' paths
		wantErr string
	}{
		{"by type, in order", []config.Component{
			component(t, "a", "test", map[string]any{"path": "/a"}),
			component(t, "other", "elsewhere", map[string]any{}),
			component(t, "b", "test", map[string]any{"path": "/b"}),
		}, "/a /b", ""},
		{"none", nil, "", ""},
		{"strict decoding", []config.Component{component(t, "a", "test", map[string]any{"paht": "/a"})}, "", "source a: "},
		{"the decoder's checks", []config.Component{component(t, "a", "test", map[string]any{})}, "", "path: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcs, opts, err := sources.Select[testOpts](&config.Config{Sources: tc.srcs}, "test")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			var paths []string
			for i, o := range opts {
				paths = append(paths, o.Path)
				if srcs[i].Type != "test" {
					t.Errorf("selected %+v", srcs[i])
				}
			}
			if err != nil || strings.Join(paths, " ") != tc.want {
				t.Fatalf("paths %v (%v), want %s", paths, err, tc.want)
			}
		})
	}
	if _, err := sources.Decode(config.Component{Name: "x", Type: "nope"}); err == nil || !strings.Contains(err.Error(), `unknown source type "nope"`) {
		t.Errorf("unknown type: %v", err)
	}
}
