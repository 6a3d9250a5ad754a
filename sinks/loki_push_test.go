package sinks

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
)

// FuzzLokiPush encodes a batch both ways (protobuf+snappy, JSON) and decodes the request as
// the fake Loki does (an independent protowire decoder, Loki's label syntax): every record
// comes back once under its rendered label set, with its line, its time to the nanosecond
// and its ID as structured metadata, each stream in time order.
func FuzzLokiPush(f *testing.F) {
	f.Add("web-1", "/var/log/a.log", "stderr", "hello", int64(1700000000123456789), "b.log", "x\xff\"\\{}=,", int64(-1))
	f.Add("h\"", "a=\"b\", c", "", "", int64(1), "", "\u2028", int64(0))
	f.Fuzz(func(t *testing.T, host, source, stream, msg string, ns int64, source2, msg2 string, ns2 int64) {
		for _, enc := range []string{"protobuf", "json"} {
			s, err := newLokiSink("t", httpSinkOpts(t, map[string]any{"url": "http://x", "encoding": enc, "id_field": "logcap_id"}))
			if err != nil {
				t.Fatal(err)
			}
			ls := s.(*LokiSink)
			batch := []Record{
				{Entry: entryAt(host, source, stream, msg, ns), Stream: "LOGS", Seq: 7, Index: 0},
				{Entry: entryAt(host, source2, stream, msg2, ns2), Stream: "LOGS", Seq: 7, Index: 1},
				{Entry: entryAt(host, source, stream, msg2, ns2), Stream: "LOGS", Seq: 8, Index: 0},
			}
			body, bad := ls.buildPush(nil, batch)
			push := decodeBuilt(t, ls, body)
			want := map[string]string{} // id → labels|ns|line
			for i := range batch {
				if _, failed := bad[i]; failed {
					continue
				}
				labels, err := ls.renderLabels(&batch[i], &bytes.Buffer{})
				if err != nil {
					t.Fatalf("%s: record %d refused (%v) but renders: %v", enc, i, bad[i], err)
				}
				line := batch[i].Message
				if enc == "json" { // JSON strings hold no invalid UTF-8: encoding/json's U+FFFD per byte
					b, _ := json.Marshal(line)
					_ = json.Unmarshal(b, &line)
				}
				want[batch[i].ID()] = fmt.Sprint(labels, "|", batch[i].Time.UnixNano(), "|", line)
			}
			got := map[string]string{}
			for _, st := range push {
				var last int64
				for k, v := range st.Values {
					ts, _ := strconv.ParseInt(v[0], 10, 64)
					if k > 0 && ts < last {
						t.Fatalf("%s: stream %v not in time order", enc, st.Stream)
					}
					last = ts
					id := st.meta[k]["logcap_id"]
					if _, dup := got[id]; dup || id == "" {
						t.Fatalf("%s: entry %v: id %q missing or repeated", enc, v, id)
					}
					got[id] = fmt.Sprint(st.Stream, "|", ts, "|", v[1])
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: decoded\n%v\nwant\n%v", enc, got, want)
			}
		}
	})
}

func entryAt(host, source, stream, msg string, ns int64) event.Entry {
	e := event.Entry{Host: host, Kind: "file", Source: source, Stream: stream, Message: msg}
	if ns != 0 {
		e.Time = time.Unix(0, ns)
	}
	return e
}

// decodeBuilt decodes a body of buildPush as the fake Loki decodes a request.
func decodeBuilt(t *testing.T, ls *LokiSink, body []byte) []fakePushStream {
	t.Helper()
	if body == nil {
		return nil
	}
	req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
	if ls.pushJSON {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(body)
		_ = zw.Close()
		req.Body, req.Header = io.NopCloser(&b), http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}
	} else {
		req.Body, req.Header = io.NopCloser(bytes.NewReader(snappyBlock(body))), http.Header{"Content-Type": {"application/x-protobuf"}}
	}
	push, _, err := decodeFakePush(req)
	if err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return push
}
