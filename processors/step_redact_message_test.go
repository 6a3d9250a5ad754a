package processors

import (
	"strings"
	"testing"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// A parsed JSON or logfmt line keeps its raw text in message: the named fields must be masked
// there too, or `redact: {fields: [password]}` would leak the password it was asked to hide.
func TestRedactNamedFieldsInMessage(t *testing.T) {
	opts, err := config.OptionsFrom(map[string]any{"fields": []string{"password", "api_key"}})
	if err != nil {
		t.Fatal(err)
	}
	step, err := NewStep("redact", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"user":"alice","password":"hunter2","n":1}`, `{"user":"alice","password":"[REDACTED]","n":1}`},
		{`{"Password": "with \"quotes\" inside"}`, `{"Password": "[REDACTED]"}`},
		{`level=info password=hunter2 user=alice`, `level=info password=[REDACTED] user=alice`},
		{`GET /login?user=a&password=hunter2&next=/ 200`, `GET /login?user=a&password=[REDACTED]&next=/ 200`},
		{`api_key: abc123, retry: 3`, `api_key: [REDACTED], retry: 3`},
		{`no secrets here`, `no secrets here`},
		{`passwords are rotated daily`, `passwords are rotated daily`},
	} {
		e := event.Entry{Message: tc.in}
		if _, err := step.Apply(&e); err != nil {
			t.Fatal(err)
		}
		if e.Message != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, e.Message, tc.want)
		}
		if strings.Contains(e.Message, "hunter2") {
			t.Errorf("secret survived in %q", e.Message)
		}
	}
}

// Whatever surrounds it, a `password=<secret>` or `"password":"<secret>"` never survives.
func FuzzMaskKV(f *testing.F) {
	f.Add(`{"a":1,`, `,"b":2}`, "s3cr3tvalue")
	f.Add("x password", " y", "hunter2hunter2")
	f.Fuzz(func(t *testing.T, before, after, secret string) {
		if len(secret) < 8 || strings.ContainsAny(secret, " \t\r\n\",;&}]\\") || strings.Contains(strings.ToLower(before+after), "password") {
			return
		}
		for _, msg := range []string{
			before + `"password":"` + secret + `"` + after,
			before + ` password=` + secret + ` ` + after,
		} {
			if out := maskKV(msg, "password", "[X]"); strings.Contains(out, secret) && !strings.Contains(before+after, secret) {
				t.Fatalf("secret survived: %q -> %q", msg, out)
			}
		}
	})
}

// FuzzIndexFold: indexFold is strings.Index on s with its ASCII letters lower-cased.
func FuzzIndexFold(f *testing.F) {
	for _, c := range [][2]string{{"x PassWord=1", "password"}, {"pPpassword", "password"}, {"", "a"}, {"aA", "a"},
		{"AUTHORIZATION", "authorization"}, {"Ппароль", "пароль"}, {"1=2", "="}, {"pas", "password"}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, s, needle string) {
		lower := strings.ToLower(needle)
		if lower == "" {
			t.Skip("redact refuses an empty name")
		}
		folded := []byte(s)
		for i, c := range folded {
			if 'A' <= c && c <= 'Z' {
				folded[i] = c + 'a' - 'A'
			}
		}
		if got, want := indexFold(s, lower), strings.Index(string(folded), lower); got != want {
			t.Fatalf("indexFold(%q, %q) = %d, want %d", s, lower, got, want)
		}
	})
}
