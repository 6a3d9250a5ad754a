package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"HOST": "loki", "EMPTY": "", "PORT": "3100", "NL": "a\nb"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, want, err string }{
		{"url: http://${HOST}:${PORT}\n", "url: http://loki:3100\n", ""},
		{"a: ${MISSING:-dflt}\n", "a: dflt\n", ""},
		{"a: ${EMPTY:-dflt}\n", "a: dflt\n", ""},
		{"a: ${EMPTY}\n", "a: \n", ""},
		{"a: ${MISSING:-}\n", "a: \n", ""},
		{"a: ${MISSING:-x:-y}\n", "a: x:-y\n", ""},
		{"price: $$5 and $${HOST}\n", "price: $5 and ${HOST}\n", ""},
		{"re: '^a$'\nb: $HOST\n", "re: '^a$'\nb: $HOST\n", ""},
		{"end$", "end$", ""},
		{"  # ${MISSING} in a comment line\na: 1\n", "  # ${MISSING} in a comment line\na: 1\n", ""},
		{"a: 1\nb: ${MISSING}\nc: ${ALSO_MISSING}\n", "", "f.yaml:2: environment variable MISSING is not set (use ${MISSING:-default} for a default)\nf.yaml:3: environment variable ALSO_MISSING is not set (use ${ALSO_MISSING:-default} for a default)"},
		{"a: ${NL}\n", "", "f.yaml:1: environment variable NL contains a line break (not allowed in a config value)"},
		{"a: ${HOST\n", "", "f.yaml:1: unterminated ${ (write $$ for a literal $)"},
		{"a: ${1X}\n", "", "f.yaml:1: invalid variable reference ${1X} (want ${NAME} or ${NAME:-default}; write $$ for a literal $)"},
		{"a: ${}\n", "", "f.yaml:1: invalid variable reference ${} (want ${NAME} or ${NAME:-default}; write $$ for a literal $)"},
	} {
		got, err := ExpandEnv("f.yaml", []byte(tc.in), lookup)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ExpandEnv(%q) error:\n got %v\nwant %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ExpandEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseExpandsEnv(t *testing.T) {
	t.Setenv("LOGCAP_TEST_NODE", "edge-7")
	c, err := Parse("e.yaml", []byte("node: ${LOGCAP_TEST_NODE}\ndata_dir: ${LOGCAP_TEST_UNSET_DIR:-/var/lib/logcap}\n"))
	if err != nil || c.Node != "edge-7" || c.DataDir != "/var/lib/logcap" {
		t.Fatalf("Parse: %+v, %v", c, err)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
		out  string
	}{
		{"10s", 10 * time.Second, false, "10s"},
		{"2m", 2 * time.Minute, false, "2m"},
		{"72h", 72 * time.Hour, false, "72h"},
		{"1h30m", 90 * time.Minute, false, "1h30m"},
		{"500ms", 500 * time.Millisecond, false, "500ms"},
		{" 0 ", 0, false, "0s"},
		{"1m30s", 90 * time.Second, false, "1m30s"},
		{"10", 0, true, ""},
		{"-5s", 0, true, ""},
		{"banana", 0, true, ""},
		{"", 0, true, ""},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tc.in))
		if (err != nil) != tc.err || d.D() != tc.want {
			t.Errorf("Duration(%q) = %v, %v", tc.in, d, err)
			continue
		}
		if !tc.err && d.String() != tc.out {
			t.Errorf("Duration(%q).String() = %q, want %q", tc.in, d.String(), tc.out)
		}
		if !tc.err {
			var back Duration
			if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
				t.Errorf("round trip of %q: %v, %v", tc.in, back, err)
			}
		}
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
		out  string
	}{
		{"512", 512, false, "512"},
		{"64KiB", 64 << 10, false, "64KiB"},
		{"64kib", 64 << 10, false, "64KiB"},
		{"10GiB", 10 << 30, false, "10GiB"},
		{"1MB", 1e6, false, "1000000"},
		{"8M", 8 << 20, false, "8MiB"},
		{"1.5KiB", 1536, false, "1536"},
		{"2 TiB", 2 << 40, false, "2TiB"},
		{"100B", 100, false, "100"},
		{"0", 0, false, "0"},
		{"10 gigs", 0, true, ""},
		{"-1KiB", 0, true, ""},
		{"NaN", 0, true, ""},
		{"Inf", 0, true, ""},
		{"0x10", 0, true, ""},
		{"99999999TiB", 0, true, ""},
		{"KiB", 0, true, ""},
	} {
		var s Size
		err := s.UnmarshalText([]byte(tc.in))
		if (err != nil) != tc.err || int64(s) != tc.want {
			t.Errorf("Size(%q) = %d, %v", tc.in, s, err)
			continue
		}
		if !tc.err && s.String() != tc.out {
			t.Errorf("Size(%q).String() = %q, want %q", tc.in, s.String(), tc.out)
		}
	}
}

func TestRedacted(t *testing.T) {
	src := `
nats:
  urls: [nats://n1:4222, "nats://admin:natspw1@n2:4222"]
  user: logcap
  password: hunter2
sinks:
  - name: loki
    type: loki
    input: logs.>
    url: "https://bob:urlpw1@loki.example/push?api_key=qk1&org=acme"
    auth: { bearer: br1 }
    headers: { Cookie: "session=ck1", X-Auth: xa1, X-Session-Token: st1 }
  - name: hook
    type: http
    input: logs.>
    url: https://example.internal/ingest
    headers: { Authorization: Bearer abc123, X-Api-Key: k1 }
    api_key: k2
    tls: { cert: /c.pem, key: /k.pem }
    auth: { user: u, key: s3 }
    client_secret: s4
    max_tokens: 5
    key: not-a-secret
  - name: es
    type: elasticsearch
    input: logs.>
    batch: { max_entries: 10 }
    password: ""
`
	c, err := Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range []string{"hunter2", "abc123", "k1", "k2", "/k.pem", "s3", "s4",
		"natspw1", "urlpw1", "qk1", "br1", "ck1", "xa1", "st1"} {
		if strings.Contains(s, secret) {
			t.Errorf("Redacted shows secret %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{
		"user: logcap", "password: \"****\"", "Authorization: \"****\"", "X-Api-Key: \"****\"",
		"cert: /c.pem", "user: u", "max_tokens: \"****\"", "key: not-a-secret",
		"url: https://example.internal/ingest", "name: LOGS", "max_age: 72h",
		"bob:****@loki.example", "org=acme", "admin:****@n2:4222",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Redacted lacks %q:\n%s", want, s)
		}
	}
	// Each key once: the decoded keys and the options mapping are merged, not concatenated.
	if n := strings.Count(s, "name: hook"); n != 1 {
		t.Errorf("name: hook printed %d times:\n%s", n, s)
	}
	if n := strings.Count(s, "max_entries: 10"); n != 1 {
		t.Errorf("batch printed %d times:\n%s", n, s)
	}
	// An empty secret is shown empty, not as a mask that suggests one is set.
	if !strings.Contains(s, `password: ""`) {
		t.Errorf("empty password:\n%s", s)
	}
	// The secret survives in the Config itself.
	if c.NATS.Password != "hunter2" {
		t.Errorf("Redacted changed the config: %q", c.NATS.Password)
	}
}

func TestRedactedParsesBack(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("redacted.yaml", out)
	if err != nil {
		t.Fatalf("Redacted output does not parse: %v\n%s", err, out)
	}
	out2, err := c2.Redacted()
	if err != nil || !bytes.Equal(out, out2) {
		t.Errorf("Redacted is not a fixed point:\n%s\n---\n%s", out, out2)
	}
}

const linesYAML = `node: web-1
sinks:
  - name: a
    type: stdout
    input: logs.>
  - name: loki
    type: loki
    input: parsed.>
    url: http://x
    timeout: soon
    retries: many
    labels:
      app: x
      bogus: [1, 2]
processors:
  - name: p
    input: logs.>
    steps:
      - json: {}
      - redact: {fields: [password], mode: 3}
`

func TestErrorfLines(t *testing.T) {
	c, err := Parse("l.yaml", []byte(linesYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		line int
	}{
		{"node", 1},
		{"sinks", 2},
		{"sinks[1]", 6},
		{"sinks[1].url", 9},
		{"sinks[1].labels.app", 13},
		{"sinks[1].password", 6}, // missing: the line of its mapping
		{"sinks[7].url", 2},      // no such element: the line of the list's key
		{"processors[0].steps[1]", 20},
		{"processors[0].steps[1].redact.fields", 20},
		{"processors[0].steps[1].redact.fields[0]", 20},
		{"admin.listen", 1}, // nothing of it present: the document's first line
	} {
		fe := c.Errorf(tc.path, "bad %d", 1)
		if fe.Line != tc.line || fe.Path != tc.path || fe.Msg != "bad 1" || fe.File != "l.yaml" {
			t.Errorf("Errorf(%q) = %+v, want line %d", tc.path, *fe, tc.line)
		}
	}
	// Without a file there is no line, and the message says so by leaving it out.
	if got := Default().Errorf("sinks[0].url", "required").Error(); got != "sinks[0].url: required" {
		t.Errorf("Default().Errorf = %q", got)
	}
}

func TestWrapOptionsError(t *testing.T) {
	c, err := Parse("l.yaml", []byte(linesYAML))
	if err != nil {
		t.Fatal(err)
	}
	type lokiOpts struct {
		URL     string            `yaml:"url"`
		Timeout Duration          `yaml:"timeout"`
		Retries int               `yaml:"retries"`
		Labels  map[string]string `yaml:"labels"`
	}
	type redactOpts struct {
		Fields []string `yaml:"fields"`
		Mode   string   `yaml:"mode"`
	}
	_, redact, _ := c.Processors[0].Steps[1].Step()
	for _, tc := range []struct {
		name, path string
		err        error
		want       string
	}{
		{"unknown key", "sinks[1]", c.Sinks[1].Options.Decode(&struct {
			URL string `yaml:"url"`
		}{}, PipelineKeys...), "l.yaml:10: sinks[1].timeout: unknown key"},
		{"bad duration", "sinks[1]", c.Sinks[1].Options.Decode(&lokiOpts{}, PipelineKeys...),
			`l.yaml:10: sinks[1].timeout: invalid duration "soon" (want e.g. 500ms, 10s, 2m, 72h)`},
		{"type in a step", "processors[0].steps[1]", redact.Decode(&struct {
			Fields []string `yaml:"fields"`
			Mode   int      `yaml:"mode"`
			Extra  bool     `yaml:"extra"`
		}{}), ""},
		{"unknown in step", "processors[0].steps[1]", redact.Decode(&struct {
			Fields []string `yaml:"fields"`
		}{}), "l.yaml:20: processors[0].steps[1].redact.mode: unknown key"},
		{"plain error", "sinks[1]", errors.New("url: scheme must be http or https"), "l.yaml:6: sinks[1]: url: scheme must be http or https"},
		{"field error kept", "sinks[1]", c.Errorf("sinks[1].url", "unreachable"), "l.yaml:9: sinks[1].url: unreachable"},
		{"ok", "sinks[1]", redact.Decode(&redactOpts{}), "<nil>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				if tc.err != nil {
					t.Fatalf("decode: %v", tc.err)
				}
				return
			}
			fe := c.WrapOptionsError(tc.path, tc.err)
			got := "<nil>"
			if fe != nil {
				got = fe.Error()
			}
			if got != tc.want {
				t.Errorf("WrapOptionsError(%q, %v):\n got %s\nwant %s", tc.path, tc.err, got, tc.want)
			}
			if strings.Contains(got, "\n") {
				t.Errorf("not one line: %q", got)
			}
		})
	}
	// Type errors name the key under the component and its line.
	err = c.Sinks[1].Options.Decode(&struct {
		URL     string            `yaml:"url"`
		Timeout string            `yaml:"timeout"`
		Retries int               `yaml:"retries"`
		Labels  map[string]string `yaml:"labels"`
	}{}, PipelineKeys...)
	if got, want := c.WrapOptionsError("sinks[1]", err).Error(), `l.yaml:11: sinks[1].retries: want an integer, got "many"`; got != want {
		t.Errorf("type error:\n got %s\nwant %s", got, want)
	}
	err = c.Sinks[1].Options.Decode(&struct {
		URL     string            `yaml:"url"`
		Timeout string            `yaml:"timeout"`
		Retries string            `yaml:"retries"`
		Labels  map[string]string `yaml:"labels"`
	}{}, PipelineKeys...)
	if got, want := c.WrapOptionsError("sinks[1]", err).Error(), `l.yaml:14: sinks[1].labels.bogus: want a string, got a list`; got != want {
		t.Errorf("nested type error:\n got %s\nwant %s", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(linesYAML))
	f.Add([]byte("nats:\n  embedded:\n    cluster: { name: c, listen: :6222, routes: [nats-route://h:6222] }\n"))
	f.Add([]byte("a: &x {b: 1}\nc: *x\nd:\n  <<: *x\n"))
	f.Add([]byte("log:\n\tlevel: debug\n"))
	f.Add([]byte("node: ${HOME}\n---\nx: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not Errors: %T %v", err, err)
			}
			return
		}
		if _, err := c.Redacted(); err != nil && !strings.Contains(err.Error(), "too large") {
			t.Fatalf("Redacted: %v", err)
		}
		c.Errorf("sinks[0].url", "x")
	})
}

func FuzzExpandEnv(f *testing.F) {
	f.Add([]byte("a: ${X:-d} $$ ${Y} $Z ${"))
	f.Add([]byte("# ${X}\n${X}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lookup := func(k string) (string, bool) { return "v", k == "X" }
		out, err := ExpandEnv("f", data, lookup)
		if err != nil {
			return
		}
		if bytes.Count(out, []byte("\n")) != bytes.Count(data, []byte("\n")) {
			t.Fatalf("line count changed: %q -> %q", data, out)
		}
		if !bytes.Contains(data, []byte("$")) && !bytes.Equal(out, data) {
			t.Fatalf("text without $ changed: %q -> %q", data, out)
		}
	})
}
