package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every broken file and the exact error `logcap check` prints for it. The wording is a
// contract with users' muscle memory and CI greps: change it deliberately.
var brokenFiles = []struct{ file, want string }{
	{"unknown_key_top.yaml", `:2: nodes: unknown key (did you mean node?)`},
	{"unknown_key_stream.yaml", `:4: streams.logs.max_bytez: unknown key (did you mean max_bytes?)`},
	{"unknown_key_cluster.yaml", `:7: nats.embedded.cluster.rotes: unknown key (did you mean routes?)`},
	{"unknown_key_processor.yaml", `:4: processors[0].max_deliveries: unknown key`},
	{"unknown_key_batch.yaml", `:6: sinks[0].batch.max_entrys: unknown key (did you mean max_entries?)`},
	{"bad_duration.yaml", `:1: shutdown_timeout: invalid duration "banana" (want e.g. 500ms, 10s, 2m, 72h)`},
	{"wrong_type_int.yaml", `:3: streams.logs.replicas: want an integer, got string "three"`},
	{"wrong_type_list.yaml", `:1: sources: want a list, got string "app"`},
	{"memory_limit_small.yaml", `:2: memory_limit: 1MiB is below the minimum of 32MiB (0: no limit)`},
	{"bad_size.yaml", `:3: streams.deadletter.max_bytes: invalid size "10 gigs" (want e.g. 1048576, 64KiB, 10GiB)`},
	{"missing_name.yaml", `:5: sinks[1].name: required`},
	{"missing_input.yaml", `:2: sinks[0].input: required (a subject filter such as logs.>)`},
	{"duplicate_sink_name.yaml", `:3: sinks[1].name: "out" is also the name of sinks[0]`},
	{"name_clash.yaml", `:6: sinks[0].name: "out" is also the name of processors[0]`},
	{"bad_enum.yaml", `:2: log.level: "verbose" is not one of debug, info, warn, error`},
	{"bad_source_type.yaml", `:3: sources[0].type: "syslog" is not one of file, docker, kubernetes, otlp`},
	{"unset_env.yaml", `:4: environment variable LOGCAP_TEST_UNSET_PASSWORD is not set (use ${LOGCAP_TEST_UNSET_PASSWORD:-default} for a default)`},
	{"bad_subject.yaml", `:4: sinks[0].input: invalid subject filter "logs.>.app": > must be the last token`},
	{"embedded_and_urls.yaml", `:4: nats.urls: cannot be used with nats.embedded (choose one)`},
	{"bad_url.yaml", `:2: nats.urls[0]: invalid URL "http://10.0.0.1:4222" (want scheme nats:// or tls:// or ws:// or wss://)`},
	{"password_without_user.yaml", `:3: nats.password: requires nats.user`},
	{"syntax_error.yaml", `:2: YAML syntax: sequence end token ']' not found`},
	{"tab_indent.yaml", `:2: tab character: YAML indentation must use spaces`},
	{"duplicate_key.yaml", `:3: node: duplicate key (first on line 1)`},
	{"duplicate_key_nested.yaml", `:6: sinks[0].url: duplicate key (first on line 5)`},
	{"bad_listen.yaml", `:2: admin.listen: invalid address "localhost" (want host:port or "none")`},
	{"replicas_7.yaml", `:3: streams.logs.replicas: 7 is out of range (1 to 5)`},
	{"step_two_keys.yaml", ":5: processors[0].steps[0]: one step per list item, got 2 keys (json, drop): start each with its own `- `"},
	{"bad_sync_interval.yaml", `:3: nats.embedded.sync_interval: invalid "sometimes" (want a duration such as 2m, or "always")`},
	{"bad_durable_name.yaml", `:2: processors[0].name: "parsed.v2": only letters, digits, - and _ are allowed (it names a durable consumer)`},
	{"bad_node.yaml", `:1: node: "web.1" is not a valid NATS subject token (no ., *, > or white space)`},
	{"alias_bomb.yaml", `:2: aliases expand the document to more than 200000 values (an alias bomb?)`},
}

func TestBrokenFiles(t *testing.T) {
	os.Unsetenv("LOGCAP_TEST_UNSET_PASSWORD")
	seen := map[string]bool{}
	for _, tc := range brokenFiles {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "broken", tc.file)
			seen[tc.file] = true
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", path, c)
			}
			if got, want := err.Error(), path+tc.want; got != want {
				t.Errorf("Load(%s):\n got %s\nwant %s", path, got, want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Errorf("want one Errors entry, got %T %d", err, len(es))
			}
			if strings.Contains(err.Error(), "\x1b") {
				t.Errorf("error has ANSI escapes: %q", err)
			}
		})
	}
	// A file in testdata/broken without an expectation is a test someone forgot.
	files, _ := filepath.Glob("testdata/broken/*.yaml")
	for _, f := range files {
		if b := filepath.Base(f); !seen[b] && b != "three_errors.yaml" {
			t.Errorf("%s has no expected error in brokenFiles", f)
		}
	}
}

func TestAllErrorsReported(t *testing.T) {
	path := "testdata/broken/three_errors.yaml"
	_, err := Load(path)
	want := path + `:3: shutdown_timeout: invalid duration "soon" (want e.g. 500ms, 10s, 2m, 72h)` + "\n" +
		path + `:5: log.level: "loud" is not one of debug, info, warn, error` + "\n" +
		path + `:9: sinks[0].input: invalid subject filter "logs..app": empty token`
	if err == nil || err.Error() != want {
		t.Fatalf("Load(%s):\n got %v\nwant %s", path, err, want)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want Errors of 3, got %#v", err)
	}
	if es[2].File != path || es[2].Line != 9 || es[2].Path != "sinks[0].input" {
		t.Errorf("third error fields = %+v", *es[2])
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yaml")
	if err == nil || err.Error() != "testdata/nope.yaml: read config: no such file or directory" {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestMoreErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"root not mapping", "- a\n", `t.yaml:1: want a mapping, got a list`},
		{"two documents", "node: a\n---\nnode: b\n", `t.yaml:3: more than one YAML document (document 2)`},
		{"unknown alias", "node: *nope\n", `t.yaml:1: unknown alias *nope`},
		{"auth twice", "nats: {urls: [nats://a:4222], token: x, creds: /c}\n", `t.yaml:1: nats.creds: cannot be combined with nats.token (use one of user, token, nkey_seed, creds)`},
		{"cluster incomplete", "nats:\n  embedded:\n    cluster: {routes: [nats-route://a:6222]}\n", "t.yaml:3: nats.embedded.cluster.name: required\nt.yaml:3: nats.embedded.cluster.listen: required"},
		{"msg size", "streams:\n  logs: {max_bytes: 1MiB, max_msg_size: 2MiB}\n", `t.yaml:2: streams.logs.max_msg_size: 2MiB is larger than max_bytes (1MiB)`},
		{"storage", "streams:\n  deadletter:\n    storage: disk\n", `t.yaml:3: streams.deadletter.storage: "disk" is not one of file, memory`},
		{"no steps", "processors:\n  - {name: p, input: logs.>}\n", `t.yaml:2: processors[0].steps: at least one step is required`},
		{"reserved", "processors:\n  - {name: logs, input: logs.>, steps: [json: {}]}\n", "t.yaml:2: processors[0].name: \"logs\" is reserved (the logs stream has subjects logs.>)\nt.yaml:2: processors[0].stream: \"LOGS\" is also the stream of streams.logs"},
		{"negative", "sinks:\n  - {name: s, type: stdout, input: logs.>, max_deliver: -1, batch: {max_entries: -5}}\n", "t.yaml:2: sinks[0].batch.max_entries: must be 0 (the default) or more\nt.yaml:2: sinks[0].max_deliver: must be 0 (the default) or more"},
		{"output_format", "processors:\n  - {name: p, input: logs.>, output_format: json, steps: [json: {}]}\n", "t.yaml:2: processors[0].output_format: \"json\" is not one of lines+json, ndjson"},
		{"workers", "processors:\n  - {name: p, input: logs.>, workers: 65, steps: [json: {}]}\n  - {name: q, input: logs.>, workers: -1, steps: [json: {}]}\n", "t.yaml:2: processors[0].workers: 65: want 0 (the default) to 64\nt.yaml:3: processors[1].workers: -1: want 0 (the default) to 64"},
		{"bool", "streams:\n  logs: {provision: maybe}\n", `t.yaml:2: streams.logs.provision: want true or false, got string "maybe"`},
		{"dup source", "sources:\n  - {name: a, type: file}\n  - {name: a, type: docker}\n", `t.yaml:3: sources[1].name: "a" is also the name of sources[0]`},
		{"sink type", "sinks:\n  - name: s\n    input: logs.>\n", `t.yaml:2: sinks[0].type: required`},
		{"mapping for string", "node: {a: 1}\n", `t.yaml:1: node: want a string, got a mapping`},
		{"bad route", "nats:\n  embedded:\n    cluster:\n      name: c\n      listen: :6222\n      routes: [ftp://x]\n", `t.yaml:6: nats.embedded.cluster.routes[0]: invalid URL "ftp://x" (want scheme nats-route:// or nats:// or tls://)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q):\n got %v\nwant %s", tc.yaml, err, tc.want)
			}
		})
	}
}

func TestFullExample(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "web-1" || c.ShutdownTimeout.D() != 10*time.Second || c.Log.Format != "json" {
		t.Errorf("top-level keys: %+v", c)
	}
	e := c.NATS.Embedded
	if e == nil || e.Listen != "127.0.0.1:4222" || e.SyncInterval != "2m" || e.MaxPayload != 8<<20 {
		t.Fatalf("embedded: %+v", e)
	}
	if cl := e.Cluster; cl == nil || cl.Name != "logcap" || len(cl.Routes) != 2 || cl.Routes[0] != "nats-route://10.0.0.2:6222" {
		t.Errorf("cluster: %+v", e.Cluster)
	}
	if l := c.Streams.Logs; l.Name != "LOGS" || l.MaxAge.D() != 72*time.Hour || l.MaxBytes != 10<<30 || l.Replicas != 1 {
		t.Errorf("streams.logs: %+v", l)
	}
	if len(c.Sources) != 2 || c.Sources[0].Type != "file" || c.Sources[1].Type != "docker" {
		t.Fatalf("sources: %+v", c.Sources)
	}
	var src struct {
		Paths     []string          `yaml:"paths"`
		StartAt   string            `yaml:"start_at"`
		Multiline map[string]string `yaml:"multiline"`
	}
	if err := c.Sources[0].Options.Decode(&src, "name", "type"); err != nil {
		t.Fatal(err)
	}
	if src.Paths[0] != "/var/log/app/*.log" || src.StartAt != "end" || src.Multiline["start"] != `^\d{4}-` {
		t.Errorf("file source options: %+v", src)
	}
	p := c.Processors[0]
	if p.Name != "parsed" || p.Stream != "PARSED" || p.Input != "logs.>" || len(p.Steps) != 3 {
		t.Fatalf("processor: %+v", p)
	}
	var steps []string
	for _, st := range p.Steps {
		k, _, err := st.Step()
		if err != nil {
			t.Fatalf("step %+v: %v", st, err)
		}
		steps = append(steps, k)
	}
	if strings.Join(steps, ",") != "json,drop,redact" {
		t.Errorf("steps = %v", steps)
	}
	_, drop, _ := p.Steps[1].Step()
	var expr string
	if err := drop.Decode(&expr); err != nil || expr != `fields.level == "debug"` {
		t.Errorf("drop step: %q, %v", expr, err)
	}
	loki := c.Sinks[1]
	if loki.Batch.MaxEntries != 1000 || loki.Batch.MaxBytes != 1<<20 || loki.MaxDeliver != 10 || loki.AckWait.D() != 30*time.Second {
		t.Errorf("loki pipeline keys: %+v", loki)
	}
	var lo struct {
		URL string `yaml:"url"`
	}
	if err := loki.Options.Decode(&lo, PipelineKeys...); err != nil || lo.URL != "http://127.0.0.1:3100" {
		t.Errorf("loki options: %+v %v", lo, err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"node", c.Node, host},
		{"data_dir", c.DataDir, "./data"},
		{"shutdown_timeout", c.ShutdownTimeout.D(), 10 * time.Second},
		{"memory_limit", *c.MemoryLimit, Size(56 << 20)},
		{"log.level", c.Log.Level, "info"},
		{"embedded.listen", c.NATS.Embedded.Listen, "127.0.0.1:4222"},
		{"embedded.sync_interval", c.NATS.Embedded.SyncInterval, "2m"},
		{"embedded.max_payload", c.NATS.Embedded.MaxPayload, Size(8 << 20)},
		{"embedded.cache_expire", c.NATS.Embedded.CacheExpire.D(), 100 * time.Millisecond},
		{"connect_timeout", c.NATS.ConnectTimeout.D(), 5 * time.Second},
		{"logs.name", c.Streams.Logs.Name, "LOGS"},
		{"logs.max_age", c.Streams.Logs.MaxAge.D(), 72 * time.Hour},
		{"logs.max_bytes", c.Streams.Logs.MaxBytes, Size(10 << 30)},
		{"deadletter.name", c.Streams.DeadLetter.Name, "DEADLETTER"},
		{"deadletter.max_age", c.Streams.DeadLetter.MaxAge.D(), 14 * 24 * time.Hour},
		{"logs.storage", c.Streams.Logs.Storage, "file"},
		{"logs.provision", *c.Streams.Logs.Provision, true},
		{"admin.listen", c.Admin.Listen, "127.0.0.1:6060"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// memory_limit: 0 turns the limit off; it is not replaced by the default.
	c, err = Parse("m.yaml", []byte("memory_limit: 0\n"))
	if err != nil || *c.MemoryLimit != 0 {
		t.Errorf("memory_limit: 0 gave %v, err %v", *c.MemoryLimit, err)
	}
	// urls instead of embedded: no embedded server is added.
	c, err = Parse("u.yaml", []byte("nats: {urls: [nats://a:4222]}\n"))
	if err != nil || c.NATS.Embedded != nil {
		t.Errorf("with urls: embedded = %+v, err %v", c.NATS.Embedded, err)
	}
	// `embedded:` with nothing under it still means embedded.
	c, err = Parse("e.yaml", []byte("nats:\n  embedded:\n"))
	if err != nil || c.NATS.Embedded == nil || c.NATS.Embedded.Listen != "127.0.0.1:4222" {
		t.Errorf("empty embedded: %+v, %v", c.NATS.Embedded, err)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	src := `
x-sink: &sink
  type: loki
  input: parsed.>
  url: http://loki:3100
sinks:
  - <<: *sink
    name: a
  - <<: *sink
    name: b
    url: http://other:3100
`
	_, err := Parse("a.yaml", []byte(src))
	// x- keys are not config keys: anchors must live in a real key or at the same place.
	if err == nil || err.Error() != "a.yaml:2: x-sink: unknown key" {
		t.Fatalf("err = %v", err)
	}
	src = strings.Replace(src, "x-sink: &sink\n  type: loki\n  input: parsed.>\n  url: http://loki:3100\n", "", 1)
	src = strings.Replace(src, "  - <<: *sink\n    name: a\n", "  - &sink\n    name: a\n    type: loki\n    input: parsed.>\n    url: http://loki:3100\n", 1)
	c, err := Parse("a.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		URL string `yaml:"url"`
	}
	if err := c.Sinks[1].Options.Decode(&o, PipelineKeys...); err != nil || c.Sinks[1].Type != "loki" || o.URL != "http://other:3100" {
		t.Errorf("merged sink: %+v %+v %v", c.Sinks[1], o, err)
	}
	if c.Sinks[1].Name != "b" || c.Sinks[1].Input != "parsed.>" {
		t.Errorf("merge: explicit keys must win: %+v", c.Sinks[1])
	}
}

func TestFlowSequenceColonWorkaround(t *testing.T) {
	// goccy/go-yaml v1.19 reads [a://b:1] inside a flow mapping as [{a://b: 1}].
	c, err := Parse("f.yaml", []byte("nats:\n  embedded:\n    cluster: { name: c, listen: 127.0.0.1:6222, routes: [nats-route://h:6222, nats-route://10.0.0.3:6222] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.NATS.Embedded.Cluster.Routes; len(r) != 2 || r[0] != "nats-route://h:6222" {
		t.Errorf("routes = %q", r)
	}
	// A real mapping (space after the colon) stays a mapping, and so an error here.
	_, err = Parse("f.yaml", []byte("nats:\n  embedded:\n    cluster: { name: c, listen: :6222, routes: [a: b] }\n"))
	if err == nil || !strings.Contains(err.Error(), "routes[0]: want a string, got a mapping") {
		t.Errorf("err = %v", err)
	}
}

// A config file is read up to 4 MiB; a longer one is an error, not a read of whatever it is.
func TestLoadTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", maxConfigBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ": read config: larger than 4 MiB"; err == nil || err.Error() != want {
		t.Fatalf("Load = %v, want %q", err, want)
	}
}
