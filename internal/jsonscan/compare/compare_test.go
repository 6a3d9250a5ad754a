package compare

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"

	"github.com/logcap/logcap/internal/jsonscan"
)

// line8 is the all-JSON 8-field line of the processor benchmarks.
const line8 = `{"seq":"0000004242","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":331,"method":"GET","status":200,"dur_ms":12.5,"msg":"request done lorem ipsum dolor sit amet consectetur"}`

type decoder struct {
	name string
	dec  func(s string) (map[string]any, error)
}

var decoders = []decoder{
	{"encoding_json", func(s string) (map[string]any, error) {
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		var m map[string]any
		err := d.Decode(&m)
		return m, err
	}},
	{"jsonscan", func(s string) (map[string]any, error) {
		m, _ := jsonscan.ParseObject(s)
		return m, nil
	}},
	{"goccy_go-json", func(s string) (map[string]any, error) {
		d := gojson.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		var m map[string]any
		err := d.Decode(&m)
		return m, err
	}},
	{"sonic", func(s string) (map[string]any, error) {
		var m map[string]any
		err := sonicNumber.UnmarshalFromString(s, &m)
		return m, err
	}},
}

// BenchmarkDecode8: one 8-field object into map[string]any, numbers kept exact (UseNumber
// or the library's nearest), as the json step needs them.
func BenchmarkDecode8(b *testing.B) {
	for _, d := range append(decoders, extra...) {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line8)))
			for b.Loop() {
				if m, err := d.dec(line8); err != nil || len(m) != 8 {
					b.Fatal(len(m), err)
				}
			}
		})
	}
}

var sonicNumber = sonic.Config{UseNumber: true}.Froze()
