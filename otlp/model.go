// Package otlp reads and writes OpenTelemetry logs in the OTLP wire formats: protobuf
// (ExportLogsServiceRequest, the same bytes as LogsData) and OTLP/JSON. It is plain code —
// no NATS, no goroutines — shared by the otlp sink (sinks) and the otlp source (sources/otlp).
//
// It is written by hand on google.golang.org/protobuf/encoding/protowire, which logcap
// already carries (through the Prometheus client), instead of importing the generated types
// of go.opentelemetry.io/proto/otlp (which pull gRPC and grpc-gateway into the build) or the
// Collector's pdata (which also pulls gRPC): see the README, "OpenTelemetry", for the sizes
// measured. The messages and field numbers are those of opentelemetry-proto v1 (logs,
// common, resource, collector/logs).
package otlp

// Logs is an export request: its resource logs, in order.
type Logs struct {
	Resources []ResourceLogs
}

// ResourceLogs is the logs of one resource (a host, a service, a container).
type ResourceLogs struct {
	Attrs     []KV
	Scopes    []ScopeLogs
	SchemaURL string
}

// ScopeLogs is the logs of one instrumentation scope within a resource.
type ScopeLogs struct {
	Name, Version string
	Attrs         []KV
	Records       []Record
	SchemaURL     string
}

// Record is one log record (opentelemetry.proto.logs.v1.LogRecord).
type Record struct {
	Time, Observed uint64 // Unix nanoseconds; 0: unknown
	SeverityNumber int32
	SeverityText   string
	Body           any // see Value
	Attrs          []KV
	Flags          uint32
	TraceID        []byte
	SpanID         []byte
	EventName      string
}

// KV is one attribute. Value is one of: string, bool, int64, float64, []byte, []any (an
// array of values) or []KV (a key-value list); nil is an empty AnyValue.
type KV struct {
	Key   string
	Value any
}

// Count is the number of log records in l.
func (l *Logs) Count() int {
	n := 0
	for i := range l.Resources {
		for j := range l.Resources[i].Scopes {
			n += len(l.Resources[i].Scopes[j].Records)
		}
	}
	return n
}

// Severity numbers of the OpenTelemetry logs data model (the first of each range).
const (
	SeverityTrace = 1
	SeverityDebug = 5
	SeverityInfo  = 9
	SeverityWarn  = 13
	SeverityError = 17
	SeverityFatal = 21
)

// Lookup returns the value of key in attrs.
func Lookup(attrs []KV, key string) (any, bool) {
	for i := range attrs {
		if attrs[i].Key == key {
			return attrs[i].Value, true
		}
	}
	return nil, false
}
