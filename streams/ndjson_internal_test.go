package streams

import (
	"reflect"
	"testing"
)

// The one-decoder reading of a derived chunk must agree with the line-by-line reading
// whenever it answers at all.
func FuzzDecodeNDJSONStream(f *testing.F) {
	for _, s := range []string{
		`{"message":"m","fields":{"a":[1,{"b":2e3}],"n":18446744073709551616}}` + "\n",
		`{"message":"a"}` + "\n\n" + `{"message":"b","host":"h"}` + "\n",
		`{"message":"a"} {"message":"b"}` + "\n",
		`{"message":` + "\n" + `"a"}` + "\n",
		`{"message":"a"}` + "\n" + `x`,
		"null\n5\n",
		`{"time":"2026-11-27T13:18:38Z","fields":{"x":1.5}}` + "\r\n \t\n",
		"\v\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		fast, ok := decodeNDJSONStream([]byte(data))
		if !ok {
			return
		}
		slow, err := decodeNDJSONLines([]byte(data))
		if err != nil {
			t.Fatalf("stream reading accepted what the line reading rejects (%v): %q", err, data)
		}
		if len(fast) == 0 && len(slow) == 0 {
			return
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("readings differ for %q:\nstream %#v\nlines  %#v", data, fast, slow)
		}
	})
}
