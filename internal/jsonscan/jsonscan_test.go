package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/logcap/logcap/internal/jsonscan"
)

// std is the reading jsonscan must agree with: encoding/json with UseNumber, numbers
// converted as jsonscan.Number does, one object and nothing after it.
func std(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return convert(m).(map[string]any), nil
}

func convert(v any) any {
	switch t := v.(type) {
	case json.Number:
		return jsonscan.Number(string(t))
	case map[string]any:
		for k, x := range t {
			t[k] = convert(x)
		}
	case []any:
		for i, x := range t {
			t[i] = convert(x)
		}
	}
	return v
}

// stdEncode is encoding/json's encoding with SetEscapeHTML(false), without the newline.
func stdEncode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

var samples = []string{
	`{"a":1}`, ` {"a" : 1 , "b":[1, 2.5, -0, 1e3, 1E-7, "x", true, false, null, {}]} `,
	`{"id":123456789012345678901234567890,"m":-9223372036854775808,"f":1e400}`,
	`{"s":"a\"b\\c\/d\b\f\n\r\tz","u":"\u00e9\u2028\ud83d\ude00\ud800x\udc00"}`,
	"{\"bad\":\"\xff\xfe\",\"\xc3\":1}", `{"dup":1,"dup":{"x":2}}`, `{"<&>":"<&>"}`,
	`{}`, `{"a":{}}`, `{"a":[]}`, `{"a":[[]]}`, `{"esc":"\'"}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
	`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":1}}`, `{"a":"x` + "\n" + `"}`,
	`[1]`, `"s"`, `null`, ``, `{"a":"\u12"}`, `{"a":"\uZZZZ"}`, `{"a":1}x`, `{"a":"` + "\x7f" + `"}`,
	`{"level":"info","n":3,"f":1.5,"ok":true,"z":null}`,
}

func TestParseObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range samples {
		t.Run(s, func(t *testing.T) { checkParse(t, s) })
	}
	deep := strings.Repeat(`{"a":`, 600) + "1" + strings.Repeat("}", 600)
	if _, ok := jsonscan.ParseObject(deep); ok {
		t.Error("600 levels: want encoding/json to decide")
	}
}

func checkParse(t *testing.T, s string) {
	t.Helper()
	fast, ok := jsonscan.ParseObject(s)
	want, err := std(s)
	if !ok {
		return // encoding/json decides: it may accept or refuse
	}
	if err != nil {
		t.Fatalf("jsonscan accepted %q, encoding/json refuses it: %v", s, err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("%q:\njsonscan      %#v\nencoding/json %#v", s, fast, want)
	}
}

func FuzzParseObject(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(checkParse)
}

func TestAppendValueAgreesWithEncodingJSON(t *testing.T) {
	values := []any{
		nil, "", "plain", "<&>\u2028\u2029\x00\x1f\x7f\"\\\t\n\r\b\f", "\xff\xc3(é😀", true, false,
		int64(0), int64(-9223372036854775808), 42, 0.0, -0.0, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, -2.5e-9,
		math.MaxFloat64, math.SmallestNonzeroFloat64, json.Number("123456789012345678901234567890"), json.Number(""),
		map[string]any{"b": 1.0, "a": []any{"x", map[string]any{"z": nil, "y": int64(2)}}, "": []any{}},
		map[string]any(nil), []any(nil), map[string]any{},
	}
	for i, v := range values {
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkEncode(t, v) })
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), json.Number("1x"), map[string]any{"a": math.NaN()},
		[]any{func() {}}, float32(1), map[string]string{}} {
		if _, ok := jsonscan.AppendValue(nil, bad); ok {
			t.Errorf("%#v: want encoding/json to decide", bad)
		}
	}
}

func checkEncode(t *testing.T, v any) {
	t.Helper()
	got, ok := jsonscan.AppendValue([]byte("prefix"), v)
	if !ok {
		t.Fatalf("%#v: not handled", v)
	}
	want, err := stdEncode(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "prefix"+string(want) {
		t.Fatalf("%#v:\njsonscan      %s\nencoding/json %s", v, got[6:], want)
	}
}

// FuzzAppendValue: whatever a JSON document decodes to (as the json step makes it), and any
// string, jsonscan writes the bytes encoding/json writes.
func FuzzAppendValue(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkEncode(t, s)
		if m, err := std(s); err == nil {
			checkEncode(t, m)
		}
	})
}

var plainRunSamples = []string{"", "abc", "abcdefgh", "abcdefghi\"", "abcdefgh\\ij", "0123456789abcdef\x1f", "abcdefg\x7f\x80",
	"abcdefgh\xc3\xa9", " !#$%&'()*+,-./[]^_`{|}~\x7f", "abcdefgh" + "\x00", "abcdefgh" + "\x20", "ab\"cdefg\x00\"", "\x1f\x00\"\"\"\"\"\"",
	"abcd\x00\x01\"\\", "abcdefgh\xff\x00\x1f\"abcd", "\\bcdefgh", "abcdefg\\"}

func TestPlainRun(t *testing.T) {
	for _, s := range plainRunSamples {
		checkPlainRun(t, s)
	}
}

func checkPlainRun(t *testing.T, s string) {
	want := 0
	for want < len(s) && s[want] >= ' ' && s[want] < 0x80 && s[want] != '"' && s[want] != '\\' {
		want++
	}
	if got := jsonscan.PlainRun(s); got != want {
		t.Errorf("PlainRun(%q) = %d, want %d", s, got, want)
	}
}

func FuzzPlainRun(f *testing.F) {
	for _, s := range plainRunSamples {
		f.Add(s)
	}
	f.Fuzz(checkPlainRun)
}

// checkSkip: Skip accepts exactly what Value accepts, and ends where Value ends.
func checkSkip(t *testing.T, s string) {
	t.Helper()
	var dv, ds jsonscan.Decoder
	dv.Reset(s)
	ds.Reset(s)
	_, okV := dv.Value()
	okS := ds.Skip()
	if okV != okS || okV && dv.Pos() != ds.Pos() {
		t.Fatalf("%q: Value ok=%v at %d, Skip ok=%v at %d", s, okV, dv.Pos(), okS, ds.Pos())
	}
}

func TestSkipAgreesWithValue(t *testing.T) {
	more := []string{
		`"\ud83d\uZZZZ"`, `"\ud83d\ude00"`, `"\u00e9"`, `"\x"`, `"\`, `"abc`, "\"a\x01\"", `[1,[2,{"a":[]}]] x`,
		strings.Repeat("[", 600) + strings.Repeat("]", 600), `-`, `-0.5e+3`, `01`, `nul`, ` true`, ``,
	}
	for _, s := range append(samples, more...) {
		t.Run(s, func(t *testing.T) { checkSkip(t, s) })
	}
}

func FuzzSkip(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(checkSkip)
}

func TestPlainRunHTML(t *testing.T) {
	for _, s := range []string{"", "abc", "abcdefgh", "abcdefghi<", "abcdefgh>ij", "0123456789abcdef&", "abcdefg\x7f\x80",
		"abc<defgh", "abcdefg&", " !#$%'()*+,-./[]^_`{|}~\x7f=;:", "abcdefghijklmnop\"", "abcdefgh\\", "abcdefgh\x1f"} {
		want := 0
		for want < len(s) && s[want] >= ' ' && s[want] < 0x80 && !strings.ContainsRune("\"\\<>&", rune(s[want])) {
			want++
		}
		if got := jsonscan.PlainRunHTML(s); got != want {
			t.Errorf("PlainRunHTML(%q) = %d, want %d", s, got, want)
		}
	}
}

// AppendStringHTML writes what encoding/json writes by default, for any string.
func FuzzAppendStringHTML(f *testing.F) {
	for _, s := range []string{"", "plain text of a log line", "a<b>c&d\"e\\f\n", "\xff\u2028é<<<<<<<<&&&&&&&&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := jsonscan.AppendStringHTML(nil, s); string(got) != string(want) {
			t.Fatalf("AppendStringHTML(%q) = %s, want %s", s, got, want)
		}
	})
}

func BenchmarkAppendStringHTML(b *testing.B) {
	for _, s := range []struct{ name, s string }{
		{"plain", strings.Repeat("GET /api/v1/items?id=12345 200 0.004s user-agent curl/8.5 ", 3)},
		{"json", `{"seq":123456,"level":"info","msg":"request served","path":"/api/v1/items","status":200,"took_ms":4,"user":"alice","agent":"curl/8.5"}`},
	} {
		b.Run(s.name, func(b *testing.B) {
			var dst []byte
			b.SetBytes(int64(len(s.s)))
			for b.Loop() {
				dst = jsonscan.AppendStringHTML(dst[:0], s.s)
			}
		})
	}
}
