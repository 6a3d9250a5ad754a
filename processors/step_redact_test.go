package processors

import (
	"strings"
	"testing"

	"github.com/logcap/logcap/event"
)

func TestRedactPatterns(t *testing.T) {
	s := newStep(t, `redact: {patterns: [email, credit_card, bearer_token, 'sk_live_[0-9a-zA-Z]{8,}']}`)
	cases := []struct{ name, in, want string }{
		{"email", "user alice.b+x@mail.example.com logged in", "user [REDACTED] logged in"},
		{"two emails", "a@b.io,c@d.org", "[REDACTED],[REDACTED]"},
		{"not an email", "x@y @ 1@2.3 me@localhost a@b.c", "x@y @ 1@2.3 me@localhost a@b.c"},
		{"visa with spaces", "card=4111 1111 1111 1111;", "card=[REDACTED];"},
		{"amex with dashes", "3782-822463-10005 paid", "[REDACTED] paid"},
		{"plain 16 digits", "pan 5555555555554444", "pan [REDACTED]"},
		{"fails Luhn", "order 4111111111111112", "order 4111111111111112"},
		{"ms timestamp is not a card", "ts=1700000000006 x", "ts=1700000000006 x"},
		{"too long", "id 41111111111111111111111", "id 41111111111111111111111"},
		{"bearer", `GET / Bearer eyJhbGciOi.J9.x-y_z= ok`, `GET / Bearer [REDACTED] ok`},
		{"authorization header", "Authorization: Basic dXNlcjpwYXNz\nnext", "Authorization: [REDACTED]\nnext"},
		{"authorization in JSON", `{"authorization":"Bearer abc","x":1}`, `{"authorization":"[REDACTED]","x":1}`},
		{"authorization logfmt", `authorization=tok123 user=bob`, `authorization=[REDACTED] user=bob`},
		{"authorization query", `GET /?authorization=tok&x=1`, `GET /?authorization=[REDACTED]&x=1`},
		{"not the header", "x_authorization_mode=1 bearerish", "x_authorization_mode=1 bearerish"},
		{"custom", "key sk_live_abcdefgh12 used", "key [REDACTED] used"},
		{"empty", "", ""},
		{"invalid UTF-8 around a secret", "\xff a@b.io \xfe", "\xff [REDACTED] \xfe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &event.Entry{Message: tc.in}
			if keep, err := s.Apply(e); !keep || err != nil {
				t.Fatalf("keep=%v err=%v", keep, err)
			}
			if e.Message != tc.want {
				t.Fatalf("got  %q\nwant %q", e.Message, tc.want)
			}
		})
	}
}

func TestRedactFields(t *testing.T) {
	s := newStep(t, `redact: {fields: [password, Token], patterns: [email], replacement: "***"}`)
	runStepCases(t, s, []stepCase{
		{name: "top level, any case", fields: map[string]any{"PASSWORD": "p", "token": 5, "user": "bob"}, keep: true, outcome: "ok",
			want: `{"PASSWORD":"***","token":"***","user":"bob"}`},
		{name: "any depth and inside lists", fields: map[string]any{"req": map[string]any{"auth": map[string]any{"password": "p"}},
			"list": []any{map[string]any{"token": "t"}, "x@y.io", 3}}, keep: true, outcome: "ok",
			want: `{"list":[{"token":"***"},"***",3],"req":{"auth":{"password":"***"}}}`},
		{name: "object value masked whole", fields: map[string]any{"password": map[string]any{"a": 1}}, keep: true, outcome: "ok",
			want: `{"password":"***"}`},
		{name: "string fields get patterns", fields: map[string]any{"contact": "mail me: bob@corp.example"}, keep: true, outcome: "ok",
			want: `{"contact":"mail me: ***"}`},
		{name: "message too", msg: "from a@b.io", keep: true, outcome: "ok", wantMsg: ptr("from ***")},
		{name: "nil fields", msg: "nothing", keep: true, outcome: "ok", want: `null`, wantMsg: ptr("nothing")},
		{name: "huge value", fields: map[string]any{"v": strings.Repeat("a", 1<<20) + " a@b.io"}, keep: true, outcome: "ok"},
	})
}

// FuzzRedact: never panics; a secret from the seeded set, set off by delimiters the
// patterns do not extend over, never survives, whatever surrounds it; named fields are
// always replaced whatever their value.
func FuzzRedact(f *testing.F) {
	secrets := []string{
		"<alice@example.com>", "<j.doe+logs@sub.example.co.uk>",
		" card=4111 1111 1111 1111;", " card=4111-1111-1111-1111;", " card=378282246310005;", " card=6011000990139424;",
		"\nAuthorization: Basic dXNlcjpwYXNzd29yZA==\n", ` Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig;`,
	}
	// The secret part of each: what must not survive.
	core := []string{"alice@example.com", "j.doe+logs@sub.example.co.uk", "4111 1111 1111 1111", "4111-1111-1111-1111",
		"378282246310005", "6011000990139424", "dXNlcjpwYXNzd29yZA==", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}
	for i := range secrets {
		f.Add("prefix ", " suffix", uint8(i))
	}
	f.Add("", "", uint8(0))
	f.Add("a@", "@b", uint8(2))
	f.Add("Bearer", "4111", uint8(7))
	f.Add("4111 ", " 1111", uint8(3))
	s := newStep(f, `redact: {fields: [password], patterns: [email, credit_card, bearer_token]}`)
	f.Fuzz(func(t *testing.T, prefix, suffix string, which uint8) {
		i := int(which) % len(secrets)
		secret := core[i]
		if strings.Contains(prefix, secret) || strings.Contains(suffix, secret) {
			t.Skip("the secret is also outside the delimiters")
		}
		msg := prefix + secrets[i] + suffix
		e := &event.Entry{Message: msg, Fields: map[string]any{"password": prefix, "note": msg, "list": []any{msg}}}
		keep, err := s.Apply(e)
		if !keep || err != nil {
			t.Fatalf("keep=%v err=%v", keep, err)
		}
		for _, out := range []string{e.Message, e.Fields["note"].(string), e.Fields["list"].([]any)[0].(string)} {
			if strings.Contains(out, secret) {
				t.Fatalf("secret %q survived in %q (from %q)", secret, out, msg)
			}
		}
		if e.Fields["password"] != "[REDACTED]" {
			t.Fatalf("password = %q", e.Fields["password"])
		}
	})
}
