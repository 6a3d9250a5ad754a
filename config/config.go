// Package config is logcap's typed configuration: YAML loading with ${ENV} expansion,
// defaults, and validation whose errors name the file, line and key path.
package config

import (
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Config is the whole configuration file. Key names are a contract with users: extend,
// never rename.
type Config struct {
	// File is the path the config was loaded from ("" for the built-in default).
	File string `yaml:"-"`

	Node            string   `yaml:"node"`
	DataDir         string   `yaml:"data_dir"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MemoryLimit is the live-heap budget above which the sources stop reading (0: none).
	MemoryLimit *Size       `yaml:"memory_limit"`
	Log         Log         `yaml:"log"`
	NATS        NATS        `yaml:"nats"`
	Streams     Streams     `yaml:"streams"`
	Sources     []Component `yaml:"sources"`
	Processors  []Processor `yaml:"processors"`
	Sinks       []Component `yaml:"sinks"`
	Admin       Admin       `yaml:"admin"`

	// root is the parsed YAML (anchors and aliases resolved), kept so that errors found later,
	// by code outside config, can still name a line: see Errorf and WrapOptionsError.
	root ast.Node
}

// Log configures logcap's own logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json, console; default: console on a terminal, json otherwise
}

// NATS says which NATS logcap uses: an embedded server (the default) or external URLs.
type NATS struct {
	Embedded *Embedded `yaml:"embedded"`

	URLs           []string `yaml:"urls"`
	User           string   `yaml:"user"`
	Password       string   `yaml:"password"`
	Token          string   `yaml:"token"`
	NKeySeed       string   `yaml:"nkey_seed"` // path to an nkey seed file
	Creds          string   `yaml:"creds"`     // path to a .creds file
	TLS            *TLS     `yaml:"tls"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Embedded configures the in-process nats-server.
type Embedded struct {
	Listen       string   `yaml:"listen"`        // host:port, or "none" for in-process only
	SyncInterval string   `yaml:"sync_interval"` // a duration, or "always" to fsync every write
	MaxPayload   Size     `yaml:"max_payload"`
	Cluster      *Cluster `yaml:"cluster"`
	// CacheExpire is how long the file store keeps a message block's buffer in memory after
	// its last read or write (nats-server's own default is 10s; logcap carries a patch that
	// makes it configurable: third_party/nats-server/PATCH.md).
	CacheExpire Duration `yaml:"cache_expire"`
	// Auth is "generated" (the default): the server requires credentials, generated into
	// data_dir/auth on first start; or "none": any local client may publish into logs.>,
	// purge and delete the streams (refused with a listen address that is not loopback).
	Auth string `yaml:"auth"`
	// StoreReserve is the free space of data_dir below which capture is held (the sources
	// wait; files and Docker's logs are the buffer) instead of letting the store fail a write,
	// which nats-server makes sticky until JetStream restarts.
	StoreReserve Size `yaml:"store_reserve"`
}

// DefaultStoreReserve is nats.embedded.store_reserve when unset: more than a quarter second
// of writes at full speed between two looks, and a block of every stream.
const DefaultStoreReserve Size = 64 << 20

// The values of nats.embedded.auth.
const (
	AuthGenerated = "generated"
	AuthNone      = "none"
)

// Cluster makes embedded servers of several logcap nodes one NATS cluster.
type Cluster struct {
	Name   string   `yaml:"name"`
	Listen string   `yaml:"listen"`
	Routes []string `yaml:"routes"`
	// User and Password authenticate routes: a node must present them to join, and presents
	// them to the routes it dials (unless a route URL carries its own user:password@). Every
	// node of the cluster has the same pair.
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
	// TLS encrypts routes and, with ca, verifies the peers' certificates (mutual TLS): every
	// node's cert must be signed by ca and name the host its routes dial.
	TLS *TLS `yaml:"tls"`
}

// TLS is a client TLS setup.
type TLS struct {
	CA                 string `yaml:"ca"`
	Cert               string `yaml:"cert"`
	Key                string `yaml:"key"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Streams holds the specs of the streams logcap provisions.
type Streams struct {
	Logs       StreamSpec `yaml:"logs"`
	DeadLetter StreamSpec `yaml:"deadletter"`
}

// StreamSpec is a JetStream stream's settings.
type StreamSpec struct {
	Name            string   `yaml:"name"`
	MaxAge          Duration `yaml:"max_age"`
	MaxBytes        Size     `yaml:"max_bytes"`
	MaxMsgSize      Size     `yaml:"max_msg_size"`
	Replicas        int      `yaml:"replicas"`
	DuplicateWindow Duration `yaml:"duplicate_window"`
	Storage         string   `yaml:"storage"` // file, memory
	Discard         string   `yaml:"discard"` // old, new
	// WhenFull (logs only): block holds the sources back rather than let the limits discard
	// messages a durable consumer has not acked; drop_oldest keeps capturing. Both count
	// such discards.
	WhenFull string `yaml:"when_full"`
	// Provision false means someone else manages the stream: logcap only checks it exists.
	Provision *bool `yaml:"provision"`
}

// Component is a source or a sink: the keys every one has, plus its whole mapping kept
// undecoded for its own type to decode strictly.
type Component struct {
	Name       string   `yaml:"name"`
	Type       string   `yaml:"type"`
	Input      string   `yaml:"input"`       // sinks: subject filter to consume
	Batch      Batch    `yaml:"batch"`       // sinks
	MaxDeliver int      `yaml:"max_deliver"` // sinks
	AckWait    Duration `yaml:"ack_wait"`    // sinks
	Backoff    Backoff  `yaml:"backoff"`     // sinks
	Request    Request  `yaml:"request"`     // sinks
	Options    Options  `yaml:"-"`
}

// Backoff shapes a sink's retries of the batch in hand and its health probes while the
// destination is down: exponential from Initial, capped at Max, with full jitter (like
// Vector's retry_initial_backoff_secs and Fluent Bit's scheduler.base / scheduler.cap). Zero
// means the pipeline's default (500ms and 30s). A Retry-After from the destination wins.
type Backoff struct {
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
}

// Request shapes a sink's requests to its destination.
type Request struct {
	// Concurrency is how many batches a sink may have in flight at once (Vector's
	// request.concurrency, Benthos' max_in_flight): 0 is the sink's default (4 for the
	// HTTP sinks; 1 for the others, which do not take more).
	Concurrency int `yaml:"concurrency"`
}

// MaxConcurrency bounds request.concurrency: each batch in flight holds up to a batch's
// memory (batch.max_bytes, 1 MiB by default) twice, decoded and encoded.
const MaxConcurrency = 64

// Batch bounds a sink's batches.
type Batch struct {
	MaxEntries int      `yaml:"max_entries"`
	MaxBytes   Size     `yaml:"max_bytes"`
	MaxWait    Duration `yaml:"max_wait"`
}

// Processor is a durable transform from an input subject filter into a derived stream.
type Processor struct {
	Name       string    `yaml:"name"`
	Input      string    `yaml:"input"`
	Stream     string    `yaml:"stream"` // derived stream name; default: upper-case Name
	Steps      []Options `yaml:"steps"`  // each a one-key mapping: `- json: {}`
	MaxDeliver int       `yaml:"max_deliver"`
	AckWait    Duration  `yaml:"ack_wait"`
	// Workers is how many goroutines run the steps of a fetched batch, its chunks shared out
	// by subject (one source's chunks always go to the same worker); 0 means the default.
	// The derived stream is the same whatever the number: outputs are published in the
	// input's order once the batch is transformed.
	Workers int `yaml:"workers"`
	// OutputFormat is the derived chunks' payload: "lines+json" (the default: the messages
	// as lines, then an object per entry with the rest) or "ndjson" (one whole entry per
	// line, for consumers of the derived stream that read NDJSON). Either reads back as the
	// same entries; see streams.FormatLinesJSON.
	OutputFormat string `yaml:"output_format"`
}

// The processors[].output_format values (streams.FormatLinesJSON, streams.FormatNDJSON).
const (
	OutputLinesJSON = "lines+json"
	OutputNDJSON    = "ndjson"
)

// MaxProcWorkers bounds processors[].workers: each worker holds up to a fetch of output.
const MaxProcWorkers = 64

// Admin is the HTTP endpoint for /metrics, /healthz, /readyz and /debug/pprof.
type Admin struct {
	Listen string `yaml:"listen"` // host:port, or "none"
}

// DefaultMemoryLimit is memory_limit when unset. With the embedded server's block caches
// bounded by cache_expire, peak RSS is about the runtime's soft limit (memlimit.SoftLimit:
// memory_limit + 40 MiB here) + 25 MiB. 56MiB ran file → LOGS → file at 7.3–9.0 CPU-s/GB in
// 119–120 MiB of RSS, under the 128 MiB a node agent is given; 64MiB with a third of room
// (the soft limit before) took 9.5–12.2 CPU-s/GB in 107–111 MiB, and 64MiB with 40 MiB of
// room peaked at ~130 MiB. Since sealed blocks let go once read, 56MiB runs file → file at
// 203 MB/s in 116 MiB (quiet machine); 48MiB was as fast on that path in 109 MiB but 20–25 %
// slower through a json processor (make bench; README, "Memory model").
const DefaultMemoryLimit Size = 56 << 20

// DefaultCacheExpire is nats.embedded.cache_expire when unset. The embedded server's memory
// is about ingest rate × cache_expire (plus a block or two per stream): 1 s at 200 MB/s holds
// ~200 MB, 100 ms ~20 MB (README, "Memory model"; docs/bench.md#memory).
const DefaultCacheExpire = Duration(100 * time.Millisecond)

// MinMemoryLimit is the smallest memory_limit other than 0. The embedded server's buffers
// are 8 MiB per message block and a few are always in use at full speed: a budget of a few of
// them holds the sources back nearly all the time, and a value like "64KiB" is more likely a
// mistake than a wish.
const MinMemoryLimit Size = 32 << 20

// Default returns the built-in configuration `logcap run` uses without -c.
func Default() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every unset key with its default.
func (c *Config) ApplyDefaults() {
	if c.Node == "" {
		c.Node, _ = os.Hostname()
		if c.Node == "" {
			c.Node = "localhost"
		}
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(10 * time.Second)
	}
	if c.MemoryLimit == nil {
		l := DefaultMemoryLimit
		c.MemoryLimit = &l
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if len(c.NATS.URLs) == 0 && c.NATS.Embedded == nil {
		c.NATS.Embedded = &Embedded{}
	}
	if e := c.NATS.Embedded; e != nil {
		if e.Listen == "" {
			e.Listen = "127.0.0.1:4222"
		}
		if e.SyncInterval == "" {
			e.SyncInterval = "2m"
		}
		if e.MaxPayload == 0 {
			e.MaxPayload = 8 << 20
		}
		if e.CacheExpire == 0 {
			e.CacheExpire = DefaultCacheExpire
		}
		if e.Auth == "" {
			e.Auth = AuthGenerated
		}
		if e.StoreReserve == 0 {
			e.StoreReserve = DefaultStoreReserve
		}
	}
	if c.NATS.ConnectTimeout == 0 {
		c.NATS.ConnectTimeout = Duration(5 * time.Second)
	}
	c.Streams.Logs.defaults("LOGS", Duration(72*time.Hour), 10<<30)
	if c.Streams.Logs.WhenFull == "" {
		c.Streams.Logs.WhenFull = "block"
	}
	c.Streams.DeadLetter.defaults("DEADLETTER", Duration(14*24*time.Hour), 1<<30)
	for i := range c.Processors {
		if p := &c.Processors[i]; p.Stream == "" {
			p.Stream = strings.ToUpper(p.Name)
		}
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = "127.0.0.1:6060"
	}
}

func (s *StreamSpec) defaults(name string, maxAge Duration, maxBytes Size) {
	if s.Name == "" {
		s.Name = name
	}
	if s.MaxAge == 0 {
		s.MaxAge = maxAge
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = maxBytes
	}
	if s.MaxMsgSize == 0 {
		s.MaxMsgSize = 8 << 20
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	if s.DuplicateWindow == 0 {
		s.DuplicateWindow = Duration(2 * time.Minute)
	}
	if s.Storage == "" {
		s.Storage = "file"
	}
	if s.Discard == "" {
		s.Discard = "old"
	}
	if s.Provision == nil {
		t := true
		s.Provision = &t
	}
}
