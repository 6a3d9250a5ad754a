package filemon

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/streams"
)

// Deps are what a monitor needs from outside.
type Deps struct {
	JS         jetstream.JetStream
	Stream     string // "LOGS"
	Host       string // host token of subjects
	Log        *zap.Logger
	Metrics    *Metrics
	KVReplicas int
	Gate       streams.Gate // holds publishes back (memory_limit, when_full); nil: never
	DataDir    string       // logcap's data_dir, absolute: its store is never tailed
	Flavor     *Flavor      // another kind of source on the file monitor (sources/kubernetes); nil: files
}

// Monitor tails the files of one `type: file` source into LOGS. Its goroutine count is
// constant: one Discover and Options.Readers Read calls, whatever the number of files.
type Monitor struct {
	name string
	opts Options
	cfg  TailConfig
	d    Deps
	log  *zap.Logger
	met  sourceMetrics
	kv   jetstream.KeyValue

	mu          sync.Mutex
	subjects    map[string]*subject // by source path
	files       map[FileID]*file
	byPath      map[string]*file
	errs        map[string]string // path → the error last logged for it
	queue       []*subject
	open        int
	gen         int
	doneGen     int // the last complete scan: a file not seen by it has left the globs
	firstStart  bool
	watched     map[string]bool
	watchFailed map[string]bool // directories whose watch could not be added
	watchedAll  bool            // every directory of the globs has an fsnotify watch
	holdFailed  int             // files the last scan could not open: retried every tick
	loops       map[string]bool // directories found to be symlink loops, warned about once
	watchCapped bool            // maxWatchedDirs reached (warned once)
	capped      bool            // max_files reached: matched files are not read (walk.go)
	wake        chan struct{}
	ready       chan struct{} // closed once the first scan's files are placed

	// held files waiting to be placed (hold.go)
	pending      []*file
	pendWake     chan struct{}
	resolving    *file
	parked       int  // held files that could not be placed yet: a full rescan every tick
	firstScanned bool // the first scan is done
	readyClosed  bool
	lostFiles    int
	lastLost     string
	lostAt       time.Time

	// include_compressed only (see content.go and gzip.go)
	fps     map[string]*contentPos // fingerprint → the content generation it leads to
	retired []retiredKey           // keys of generations no longer read, oldest first
	gzWait  map[FileID]gzWait      // gzip files whose first bytes are not decodable yet
}

// gzWait is a gzip file not placed yet because its first bytes are not decodable: still
// being written, or truncated.
type gzWait struct {
	size  int64
	since time.Time // since when it has this size
}

// subject is one LOGS subject: the files published under it, oldest first. Only files[0]
// is read; the next starts when it is drained, so the subject's positions chain.
type subject struct {
	source  string
	pub     *streams.Publisher
	files   []*file
	queued  bool
	busy    bool // a reader holds it
	again   bool // work arrived while busy
	stopped bool // fenced: another writer
}

// file is one file (one identity) the monitor knows. It is held (pending, its descriptor in
// fh) from discovery until Resolve places it on a subject (subj, tl) or settles it (done).
// The monitor's mutex guards every field; tl is used outside it by the reader holding subj
// (busy) only.
type file struct {
	id        FileID
	path      string // latest path it was seen at
	src       string // the path it was found at: the subject it starts under
	pending   bool   // held, not placed yet
	parked    bool   // could not be placed yet: tried again when a scan sees it
	initial   bool   // found by the first scan (start_at applies)
	fh        *os.File
	seenGen   int
	sizeSeen  int64
	tl        *Tailer  // nil once done
	subj      *subject // nil once done
	behind    int64
	kvDirty   bool
	kvAt      time.Time
	truncs    int         // the tailer's truncations counted so far
	splits    int         // the tailer's split lines counted so far
	malformed int         // the tailer's malformed lines counted so far
	content   *contentPos // its content in the index (include_compressed)
	keys      headKeys    // index keys found when it was placed
	gz        bool        // a gzip file
	doneSize  int64       // a finished file's size: it is looked at again if that changes
	after     *contentPos // a gzip copy of a file still being read: it waits for that file's end
}

// New builds a monitor for source name; opts must have been through WithDefaults.
func New(name string, opts Options, d Deps) (*Monitor, error) {
	ml, err := NewMultiline(opts.Multiline, int(opts.MaxLineBytes))
	if err != nil {
		return nil, fmt.Errorf("file source %s: %w", name, err)
	}
	if d.Metrics == nil {
		d.Metrics, _ = NewMetrics(nil)
	}
	if d.Stream == "" {
		d.Stream = "LOGS"
	}
	if d.KVReplicas < 1 {
		d.KVReplicas = 1
	}
	cfg := TailConfig{
		Host: d.Host, MaxLineBytes: int(opts.MaxLineBytes), MaxChunkBytes: int(opts.MaxChunkBytes),
		PartialFlush: opts.PartialFlush.D(), MultilineTimeout: opts.PartialFlush.D(), Multiline: ml,
		CloseRemovedAfter: opts.CloseRemovedAfter.D(), GzipSettle: opts.PollInterval.D(), Flavor: d.Flavor,
	}
	if opts.Multiline != nil {
		cfg.MultilineTimeout = opts.Multiline.Timeout.D()
	}
	m := &Monitor{
		name: name, opts: opts, cfg: cfg, d: d, log: d.Log.With(zap.String("source", name)),
		met: d.Metrics.forSource(name), subjects: map[string]*subject{}, files: map[FileID]*file{},
		byPath: map[string]*file{}, errs: map[string]string{}, watched: map[string]bool{},
		wake: make(chan struct{}, 1), ready: make(chan struct{}), pendWake: make(chan struct{}, 1),
	}
	if opts.IncludeCompressed {
		m.fps, m.gzWait = map[string]*contentPos{}, map[FileID]gzWait{}
	}
	return m, nil
}

// Ready is closed once the first scan has placed every file found.
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// Readers is how many Read calls the monitor wants beside its one Discover and one Resolve.
func (m *Monitor) Readers() int { return m.opts.Readers }

// Task is one blocking function of a monitor, to be run on a goroutine of its own.
type Task struct {
	Name string // "discover", "resolve", "read #N"
	Run  func(ctx context.Context) error
}

// Tasks are the monitor's blocking functions: one Discover, one Resolve and Readers Read.
// Each returns when ctx is done; the caller runs each once and waits for all of them.
func (m *Monitor) Tasks() []Task {
	ts := []Task{{"discover", m.Discover}, {"resolve", m.Resolve}}
	for i := range m.opts.Readers {
		ts = append(ts, Task{fmt.Sprintf("read #%d", i), m.Read})
	}
	return ts
}

// Close closes every file; call it after Discover and Read have returned.
func (m *Monitor) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.subjects {
		for _, f := range s.files {
			if f.tl != nil && f.tl.IsOpen() {
				f.tl.Close()
				m.open--
			}
		}
	}
	for _, f := range m.files {
		m.releaseLocked(f) // held, not placed
	}
	m.met.open.Set(float64(m.open))
	return nil
}

// Stats is a snapshot of what the monitor tracks (tests read it; no endpoint shows it).
type Stats struct {
	Subjects, Files, Open int
	Pending               int // held files not placed yet (Resolve's queue, parked)
	Scans                 int
}

// Stats returns counts of what the monitor tracks.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	pending := 0
	for _, f := range m.files {
		if f.pending {
			pending++
		}
	}
	return Stats{Subjects: len(m.subjects), Files: len(m.files), Open: m.open, Pending: pending, Scans: m.gen}
}
