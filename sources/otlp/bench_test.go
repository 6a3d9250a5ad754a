package otlp

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/otlp"
)

// BenchmarkReceiver: one export request of 100 records of 200 B (what the Collector's
// filelog receiver sends by default), decoded, mapped and stored with its JetStream ack.
func BenchmarkReceiver(b *testing.B) {
	js := newJSB(b)
	o, _ := Decode(config.Component{Name: "otel", Type: Type})
	rc := NewReceiver("otel", "node-1", o, js, nil, zap.NewNop(), nil)
	bodies := make([]any, 100)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("%0200d", i)
	}
	b.ReportAllocs()
	b.SetBytes(100 * 200)
	for i := 0; b.Loop(); i++ {
		l := logsOf("shop", bodies...)
		l.Resources[0].Scopes[0].Records[0].Time = uint64(i) // a new request each time: no dedup
		req := httptest.NewRequest("POST", "/v1/logs", bytes.NewReader(otlp.AppendProto(nil, l)))
		req.Header.Set("Content-Type", "application/x-protobuf")
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
