package streams

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeToken(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nginx", "nginx"},
		{"/var/log/app.log", "/var/log/app%2Elog"},
		{"", "%"},
		{"a b\tc", "a%20b%09c"},
		{"*", "%2A"},
		{">", "%3E"},
		{"100%", "100%25"},
		{"héllo", "héllo"},
		{"bad\xffutf8", "bad%FFutf8"},
		{"web-1", "web-1"},
		{"C:\\logs\\x", "C:\\logs\\x"},
		{"line\nbreak", "line%0Abreak"},
		{"\x7f", "%7F"},
	} {
		got := EncodeToken(tc.in)
		if got != tc.want {
			t.Errorf("EncodeToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := DecodeToken(got)
		if err != nil || back != tc.in {
			t.Errorf("DecodeToken(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
}

func TestDecodeTokenErrors(t *testing.T) {
	for _, tok := range []string{"a%", "a%4", "%zz", "%4g", "x%%"} {
		if _, err := DecodeToken(tok); err == nil {
			t.Errorf("DecodeToken(%q): want error", tok)
		}
	}
}

func TestSubjectRoundTrip(t *testing.T) {
	subj := SourceSubject(KindFile, "web 1", "/var/log/a.b/c.log")
	if subj != "logs.file.web%201./var/log/a%2Eb/c%2Elog" {
		t.Fatalf("subject %q", subj)
	}
	p, err := ParseSubject(subj)
	if err != nil {
		t.Fatal(err)
	}
	if p != (SubjectParts{"logs", "file", "web 1", "/var/log/a.b/c.log"}) {
		t.Fatalf("parts %+v", p)
	}
	if _, err := ParseSubject("logs.file.x"); err == nil {
		t.Fatal("want error for 3 tokens")
	}
}

// validToken is what the NATS server accepts as one literal token.
func validToken(tok string) bool {
	if tok == "" || tok == "*" || tok == ">" || !utf8.ValidString(tok) {
		return false
	}
	return !strings.ContainsAny(tok, ". \t\r\n\f\v*>") && !strings.ContainsFunc(tok, func(r rune) bool { return r < ' ' || r == 0x7f })
}

func FuzzTokenRoundTrip(f *testing.F) {
	for _, s := range []string{"", "a.b", "/var/log/x.log", "\xff\xfe", "%", "%25", "a b", "ü.*>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EncodeToken(s)
		if !validToken(tok) {
			t.Fatalf("EncodeToken(%q) = %q is not a valid NATS token", s, tok)
		}
		back, err := DecodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, tok, back, err)
		}
	})
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range []string{"%", "a%2E", "%GG", "%", "x%4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		s, err := DecodeToken(tok)
		if err != nil {
			return
		}
		// Whatever decodes must encode to a token that decodes to the same string.
		if back, err := DecodeToken(EncodeToken(s)); err != nil || back != s {
			t.Fatalf("%q: decode/encode/decode gave %q, %v", tok, back, err)
		}
	})
}
