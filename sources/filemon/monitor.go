package filemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/fsnotify/fsnotify"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

// PositionsBucket is the KV bucket of file positions: the fallback for when retention has
// removed a file's last message from LOGS, and the memory of which subject a renamed file
// belongs to.
const PositionsBucket = "logcap_positions"

// Deps are what a monitor needs from outside.
type Deps struct {
	JS         jetstream.JetStream
	Stream     string // "LOGS"
	Host       string // host token of subjects
	Log        *zap.Logger
	Metrics    *Metrics
	KVReplicas int
	Gate       streams.Gate // holds publishes back (memory_limit, when_full); nil: never
	DataDir    string       // logcap's data_dir, absolute: never tailed
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
	id       FileID
	path     string // latest path it was seen at
	src      string // the path it was found at: the subject it starts under
	pending  bool   // held, not placed yet
	parked   bool   // could not be placed yet: tried again when a scan sees it
	initial  bool   // found by the first scan (start_at applies)
	fh       *os.File
	seenGen  int
	sizeSeen int64
	tl       *Tailer  // nil once done
	subj     *subject // nil once done
	behind   int64
	kvDirty  bool
	kvAt     time.Time
	truncs   int         // the tailer's truncations counted so far
	splits   int         // the tailer's split lines counted so far
	content  *contentPos // its content in the index (include_compressed)
	keys     headKeys    // index keys found when it was placed
	gz       bool        // a gzip file
	doneSize int64       // a finished file's size: it is looked at again if that changes
	after    *contentPos // a gzip copy of a file still being read: it waits for that file's end
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
		CloseRemovedAfter: opts.CloseRemovedAfter.D(), GzipSettle: opts.PollInterval.D(),
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

func kvToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	if b.Len() == 0 {
		return "="
	}
	return b.String()
}

func (m *Monitor) posKey(id FileID) string {
	return fmt.Sprintf("pos.%s.%d.%d", kvToken(m.d.Host), id.Dev, id.Ino)
}

type posRecord struct {
	Source string `json:"source"`
	FP     string `json:"fp"`
	End    int64  `json:"end"`
	// a gzip file read as far as it goes (to its end, or given up) at this compressed size
	GzipDone bool  `json:"gzip_done,omitempty"`
	GzipSize int64 `json:"gzip_size,omitempty"`
}

func (m *Monitor) kvGet(ctx context.Context, id FileID) (*posRecord, error) {
	var e jetstream.KeyValueEntry
	err := m.untilNATS(ctx, func() error {
		var err error
		e, err = m.kv.Get(ctx, m.posKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("positions %s: %w", m.posKey(id), err)
		}
		return nil
	})
	if err != nil || e == nil {
		return nil, err
	}
	var r posRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("positions %s: %w", m.posKey(id), err)
	}
	return &r, nil
}

// untilNATS runs op, a NATS request, until it succeeds or ctx is done, trying again at once
// when the connection comes back. Only placing a file waits here: the file is held open
// meanwhile (hold.go), so a rotation during the outage cannot take its lines away.
func (m *Monitor) untilNATS(ctx context.Context, op func() error) error {
	var rc *streams.Reconnects
	backoff := natsRetry.New()
	for {
		err := op()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if rc == nil {
			m.log.Warn("file monitor: NATS request failed; retrying until it answers", zap.Error(err))
			rc = streams.WatchReconnects(m.d.JS.Conn())
			defer rc.Stop()
		}
		if rc.Wait(ctx, backoff.Next()) {
			backoff.Reset()
		}
		if ctx.Err() != nil {
			return err
		}
	}
}

// natsRetry paces the requests to a NATS that does not answer (a reconnect cuts it short).
var natsRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

func (m *Monitor) kvPut(ctx context.Context, id FileID, r posRecord) error {
	b, _ := json.Marshal(r)
	if _, err := m.kv.Put(ctx, m.posKey(id), b); err != nil {
		return fmt.Errorf("positions %s: %w", m.posKey(id), err)
	}
	return nil
}

func (m *Monitor) setup(ctx context.Context) error {
	if mp := m.d.JS.Conn().MaxPayload(); mp > 0 && int64(m.cfg.MaxChunkBytes)+8192 > mp {
		// An external NATS left at its 1 MB default: smaller chunks work just as well.
		m.cfg.MaxChunkBytes = int(mp - 8192)
		m.log.Warn("max_chunk_bytes lowered to fit the server's max_payload (headers need up to 8 KiB more)",
			zap.Int64("max_payload", mp), zap.Int("max_chunk_bytes", m.cfg.MaxChunkBytes))
	}
	kv, err := m.d.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PositionsBucket, History: 1, Storage: jetstream.FileStorage, Replicas: m.d.KVReplicas})
	if err != nil {
		return fmt.Errorf("file source %s: kv %s: %w", m.name, PositionsBucket, err)
	}
	m.kv = kv
	_, err = kv.Get(ctx, m.markerKey())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		m.firstStart = true
	case err != nil:
		return fmt.Errorf("file source %s: kv %s: %w", m.name, PositionsBucket, err)
	}
	if m.fps != nil {
		if err := m.loadContent(ctx); err != nil {
			return fmt.Errorf("file source %s: kv %s: %w", m.name, PositionsBucket, err)
		}
	}
	return nil
}

func (m *Monitor) markerKey() string {
	return fmt.Sprintf("source.%s.%s", kvToken(m.d.Host), kvToken(m.name))
}

// Discover finds the files (globs, fsnotify on their directories, a stat poll every
// poll_interval as the safety net) and hands files with work to the readers. It blocks
// until ctx is done.
func (m *Monitor) Discover(ctx context.Context) error {
	if natsRetry.Until(ctx, 0, m.setup, func(_ int, err error) {
		m.log.Error("file monitor setup failed, retrying", zap.Error(err))
	}) != nil {
		return nil
	}
	var events <-chan fsnotify.Event
	var werrs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		m.log.Warn("no fsnotify: polling only", zap.Duration("poll_interval", m.opts.PollInterval.D()), zap.Error(err))
	} else {
		defer w.Close()
		events, werrs = w.Events, w.Errors
	}
	m.scan(ctx, w)
	m.mu.Lock()
	m.firstScanned = true // Resolve opens Ready once it has placed what this scan found
	select {
	case m.pendWake <- struct{}{}:
	default:
	}
	m.mu.Unlock()
	tick := time.NewTicker(m.opts.PollInterval.D())
	defer tick.Stop()
	rescan := time.NewTimer(time.Hour)
	rescan.Stop()
	defer rescan.Stop()
	pending := false
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Has(fsnotify.Write) {
				m.mu.Lock()
				if f := m.byPath[ev.Name]; f != nil && f.subj != nil {
					m.enqueueLocked(f.subj)
				}
				m.mu.Unlock()
			}
			if ev.Has(fsnotify.Create) {
				m.holdPath(ev.Name)
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Chmod) {
				if !pending { // coalesce a burst of events into one rescan
					pending = true
					rescan.Reset(20 * time.Millisecond)
				}
			}
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				m.log.Warn("fsnotify overflow: rescanning")
			} else {
				m.log.Warn("fsnotify", zap.Error(err))
			}
			m.scan(ctx, w)
		case <-rescan.C:
			pending = false
			m.scan(ctx, w)
		case <-tick.C:
			// While fsnotify watches every directory, its events start the rescans and the
			// reads; the full rescan (a glob and a stat per file: 4.5% of a core for 10,000
			// files at 1s) is then only the safety net for missed events, every
			// fullScanEvery ticks. The cheap poll (partial lines, removed files, positions)
			// runs on every tick.
			ticks++
			m.mu.Lock()
			parked := m.parked
			m.mu.Unlock()
			if w == nil || !m.watchedAll || parked+m.holdFailed > 0 || ticks%fullScanEvery == 0 {
				m.scan(ctx, w)
			}
			m.poll()
		}
	}
}

// fullScanEvery is how many poll_interval ticks pass between full rescans while fsnotify
// watches every directory.
const fullScanEvery = 10

var compressed = []string{".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".Z"}

func (m *Monitor) excluded(p string) bool {
	if m.d.DataDir != "" && within(p, m.d.DataDir) {
		return true // logcap's own store (CheckDataDir refuses globs aimed at it)
	}
	for dir := range pseudoFS {
		if within(p, dir) {
			return true
		}
	}
	for _, ex := range m.opts.Exclude {
		if ok, _ := doublestar.PathMatch(ex, p); ok {
			return true
		}
	}
	return slices.Contains(compressed, filepath.Ext(p)) && !m.isGzip(p)
}

// isGzip reports whether p is read as a gzip file.
func (m *Monitor) isGzip(p string) bool { return m.opts.IncludeCompressed && IsGzipName(p) }

// watchDirs returns the directories whose changes can add or remove matches, and whether
// their watches see every new match: not when a pattern's directory does not exist yet, nor
// when its directory part has wildcards other than ** (a new directory matching them appears
// in a directory nobody watches). Then only the full rescan finds new files.
func (m *Monitor) watchDirs() (map[string]bool, bool) {
	dirs := map[string]bool{}
	complete := true
	for _, p := range m.opts.Paths {
		base, _ := doublestar.SplitPattern(filepath.ToSlash(p))
		if strings.Contains(p, "**") {
			if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
				complete = false
			}
			filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
				switch {
				case err != nil || !d.IsDir():
					return nil
				case m.d.DataDir != "" && within(path, m.d.DataDir), pseudoFS[path]:
					return filepath.SkipDir
				case len(dirs) >= maxWatchedDirs:
					complete = false // the full rescan covers the rest
					if !m.watchCapped {
						m.watchCapped = true
						m.log.Warn("file monitor: more directories than inotify watches allowed per source: the rest are found by the rescan (every poll_interval)",
							zap.Int("watched", maxWatchedDirs), zap.String("glob", p))
					}
					return filepath.SkipAll
				}
				dirs[path] = true
				return nil
			})
			continue
		}
		dp := filepath.Dir(p)
		if fi, err := os.Stat(dp); err != nil || !fi.IsDir() || strings.ContainsAny(dp, "*?[{") {
			complete = false
		}
		ms, _ := doublestar.FilepathGlob(dp)
		for _, d := range ms {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				dirs[d] = true
			}
		}
	}
	return dirs, complete
}

// maxWatchedDirs bounds the inotify watches of one source: `paths: ["/**"]` asked for
// 47,809 (a user has 8,192 to 65,536 in all, shared with every program).
const maxWatchedDirs = 4096

// pseudoFS are trees of kernel files, never logs: a ** glob does not descend into them.
var pseudoFS = map[string]bool{"/proc": true, "/sys": true, "/dev": true}

// scan matches the globs, places new files, and notes where known files are now.
func (m *Monitor) scan(ctx context.Context, w *fsnotify.Watcher) {
	if w != nil {
		dirs, complete := m.watchDirs()
		failed := map[string]bool{}
		for d := range dirs {
			if !m.watched[d] {
				if err := w.Add(d); err != nil {
					failed[d] = true
					m.log.Warn("cannot watch directory: polling covers it", zap.String("dir", d), zap.Error(err))
					continue
				}
			} else if m.watchFailed[d] {
				failed[d] = true
			}
		}
		m.watchFailed = failed
		m.watchedAll = complete && len(failed) == 0
		for d := range m.watched {
			if !dirs[d] {
				w.Remove(d)
			}
		}
		m.watched = dirs
	}
	matched := map[string]bool{}
	for _, p := range m.opts.Paths {
		ms, err := doublestar.FilepathGlob(p)
		if err != nil {
			m.noteErr(p, fmt.Errorf("glob %s: %w", p, err), zap.ErrorLevel)
			continue
		}
		for _, x := range ms {
			if !m.excluded(x) {
				matched[x] = true
			}
		}
	}
	m.dropSymlinkedDirs(matched)
	paths := make([]string, 0, len(matched))
	for p := range matched {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	m.mu.Lock()
	m.gen++
	gen := m.gen
	m.byPath = make(map[string]*file, len(paths))
	for p := range m.errs {
		if !matched[p] && !slices.Contains(m.opts.Paths, p) {
			delete(m.errs, p)
		}
	}
	m.mu.Unlock()
	// gzip files last: a .gz is recognised by the content of files read, including those
	// this scan places or sees grown past 1 KiB
	slices.SortStableFunc(paths, func(a, b string) int {
		ga, gb := m.isGzip(a), m.isGzip(b)
		switch {
		case ga == gb:
			return 0
		case gb:
			return -1
		}
		return 1
	})
	failed := 0
	var heads []*file
	for i, p := range paths {
		if ctx.Err() != nil {
			return
		}
		if m.isGzip(p) && (i == 0 || !m.isGzip(paths[i-1])) {
			m.readHeads(heads)
		}
		fi, err := os.Stat(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				m.noteErr(p, fmt.Errorf("file %s: %w", p, err), zap.WarnLevel)
			}
			continue
		}
		if fi.IsDir() {
			m.noteErr(p, fmt.Errorf("file %s: is a directory, skipped", p), zap.DebugLevel)
			continue
		}
		if !fi.Mode().IsRegular() {
			m.noteErr(p, fmt.Errorf("file %s: not a regular file (%s), skipped", p, fi.Mode().Type()), zap.WarnLevel)
			continue
		}
		id, _ := StatID(fi)
		m.mu.Lock()
		f := m.files[id]
		if f != nil && f.subj == nil && !f.pending && fi.Size() != f.doneSize {
			// A finished file changed size: look at it again (track checks its first bytes
			// against its position). logrotate's delaycompress deletes app.log.1 and creates
			// the new app.log with the same inode within milliseconds: without this, a glob
			// matching both took the new file for the finished one and never read it.
			delete(m.files, id)
			f = nil
		}
		if f != nil {
			f.path, f.seenGen, f.sizeSeen = p, gen, fi.Size()
			m.byPath[p] = f
			if c := f.content; c != nil && c.live && c.full == "" && fi.Size() >= FingerprintBytes {
				heads = append(heads, f)
			}
			if f.parked { // held, not placed yet: Resolve tries again
				f.parked = false
				m.parked--
				m.queuePendingLocked(f)
			}
			m.mu.Unlock()
			continue
		}
		m.mu.Unlock()
		if err := m.hold(p, gen); err != nil && !errors.Is(err, fs.ErrNotExist) {
			failed++
			m.noteErr(p, err, zap.ErrorLevel)
		}
	}
	m.holdFailed = failed
	m.mu.Lock()
	m.doneGen = gen
	for id, f := range m.files {
		if f.subj == nil && (!f.pending || f.parked) && f.seenGen != gen {
			// a finished file, or one that could not be placed, left the globs: forget it
			if f.parked {
				f.parked = false
				m.parked--
			}
			m.releaseLocked(f)
			delete(m.files, id)
		}
	}
	for id := range m.gzWait {
		if m.files[id] == nil {
			delete(m.gzWait, id)
		}
	}
	m.mu.Unlock()
}

// readHeads adds to the content index the first 1 KiB of files being read that have grown
// to that size since they were placed (before a gzip copy of them is looked up).
func (m *Monitor) readHeads(files []*file) {
	for _, f := range files {
		m.mu.Lock()
		path := f.path
		m.mu.Unlock()
		fh, err := os.Open(path)
		if err != nil {
			continue
		}
		head, _ := readHead(fh, FingerprintBytes)
		fi, err := fh.Stat()
		fh.Close()
		if err != nil || len(head) < FingerprintBytes {
			continue
		}
		if id, _ := StatID(fi); id != f.id {
			continue
		}
		m.mu.Lock()
		if c := f.content; c != nil && c.live {
			m.addKeyLocked(c, Fingerprint(head), FingerprintBytes)
		}
		m.mu.Unlock()
	}
}

// noteErr logs an error about path once (again only when it changes); it reports whether
// it logged.
func (m *Monitor) noteErr(path string, err error, lvl zapcore.Level) bool {
	m.mu.Lock()
	prev, had := m.errs[path]
	m.errs[path] = err.Error()
	m.mu.Unlock()
	if had && prev == err.Error() {
		return false
	}
	if lvl >= zap.WarnLevel {
		m.met.errs.Inc()
	}
	m.log.Check(lvl, "file monitor: "+err.Error()).Write(zap.String("path", path))
	return true
}

func (m *Monitor) clearErr(path string) {
	m.mu.Lock()
	prev, had := m.errs[path]
	delete(m.errs, path)
	m.mu.Unlock()
	if had {
		m.log.Info("file monitor: file is readable again", zap.String("path", path), zap.String("previous_error", prev))
	}
}

// openStat opens path and stats the open file, not the path (it may be replaced meanwhile).
func openStat(path string) (*os.File, os.FileInfo, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return fh, fi, nil
}

// track places f, a held file: which subject it belongs to and where to start reading it
// (DESIGN.md "Positions"). Placing needs NATS only for a subject not read yet and for the
// KV record of the file's identity.
func (m *Monitor) track(ctx context.Context, f *file) error {
	fh, err := m.heldOpen(f)
	if err != nil {
		return err
	}
	if f.gz {
		return m.trackGzip(ctx, f, fh)
	}
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.src, err)
	}
	id, path, size := f.id, f.src, fi.Size()
	rec, err := m.kvGet(ctx, id)
	if err != nil {
		return err
	}
	if rec != nil && size >= rec.End {
		if ok, _ := VerifyHead(fh, rec.End, rec.FP); !ok {
			rec = nil // inode reuse: another file had this inode
		}
	} else {
		rec = nil
	}
	src := path
	if rec != nil && rec.Source != path {
		src = rec.Source // renamed: a file keeps the subject it started under
	}
	m.mu.Lock()
	s := m.subjects[src]
	firstStart := f.initial && m.firstStart
	m.mu.Unlock()
	var offset int64
	var pre *file
	switch {
	case s != nil && src != path:
		m.settle(f, size) // renamed away from a subject that has moved on to a newer file: it was drained
		return nil
	case s != nil:
		offset = 0 // a new file took the path (rotation): it comes after the subject's current one
	default:
		lc, lastSeq, err := m.lastChunk(ctx, src)
		if err != nil {
			return err
		}
		matches := lc != nil && FileID{lc.File.Dev, lc.File.Ino} == id && size >= lc.File.End
		if matches {
			matches, _ = VerifyHead(fh, lc.File.End, lc.File.Fingerprint)
		}
		switch {
		case matches:
			offset = lc.File.End
		case src != path && lc != nil:
			m.settle(f, size) // renamed, and its subject went on with another file since
			return nil
		case rec != nil:
			offset = rec.End // retention removed the subject's messages: the KV remembers
		case lc == nil && firstStart && m.opts.StartAt == "end":
			offset = size
		}
		if rec != nil && rec.Source == src {
			offset = max(offset, rec.End)
		}
		if lc != nil && !matches {
			// the subject's last file is not at its path: rotated. Drain it first if found.
			m.rememberRotated(src, lc.File)
			pre = m.findRotated(path, lc.File)
		}
		s = m.newSubject(src, lastSeq)
		if offset > 0 && rec == nil {
			// a position chosen by start_at: record it so a restart does not read the file again
			head, _ := readHead(fh, offset)
			if err := m.untilNATS(ctx, func() error { return m.kvPut(ctx, id, posRecord{Source: src, FP: Fingerprint(head), End: offset}) }); err != nil {
				if pre != nil {
					pre.tl.Close()
				}
				return err
			}
		}
	}
	head, err := readHead(fh, offset)
	if err != nil {
		if pre != nil {
			pre.tl.Close()
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	keys := m.keysOf(fh, offset, head)
	m.place(s, f, pre, NewTailer(&m.cfg, src, fh, id, offset, head, time.Now()), keys)
	return nil
}

// newSubject is the subject of source whose last message has sequence lastSeq.
func (m *Monitor) newSubject(source string, lastSeq uint64) *subject {
	subj := streams.SourceSubject(streams.KindFile, m.d.Host, source)
	pub := streams.NewPublisher(m.d.JS, m.d.Stream, subj, lastSeq)
	pub.Gate = m.d.Gate
	return &subject{source: source, pub: pub}
}

// lastChunk returns the last chunk published for source, and its stream sequence.
func (m *Monitor) lastChunk(ctx context.Context, source string) (*streams.Chunk, uint64, error) {
	subj := streams.SourceSubject(streams.KindFile, m.d.Host, source)
	var last *jetstream.RawStreamMsg
	if err := m.untilNATS(ctx, func() (err error) {
		last, err = streams.LastMsg(ctx, m.d.JS, m.d.Stream, subj)
		return err
	}); err != nil || last == nil {
		return nil, 0, err
	}
	lc, err := streams.DecodeChunk(last.Subject, last.Header, last.Data)
	if err != nil || lc.File == nil {
		return nil, 0, fmt.Errorf("last message of %s: %v", subj, err)
	}
	return lc, last.Sequence, nil
}

// place puts f, a held file, on its subject s with tailer tl (which takes over its
// descriptor), after pre (the file the subject's last chunk came from, found rotated next to
// f's path) if that is not known yet.
func (m *Monitor) place(s *subject, f, pre *file, tl *Tailer, keys headKeys) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pre != nil {
		switch old := m.files[pre.id]; {
		case old != nil && !old.pending: // already known under its new name
			pre.tl.Close()
			pre = nil
		case old != nil:
			m.takeOverPendingLocked(old)
			fallthrough
		default:
			pre.subj = s
			pre.content = m.newContentLocked(s.source, pre.tl.Offset(), pre.keys)
			s.files = append(s.files, pre)
			m.files[pre.id] = pre
			m.open++
		}
	}
	f.fh, f.pending, f.subj, f.tl, f.keys = nil, false, s, tl, keys
	if !f.gz {
		f.content = m.newContentLocked(s.source, tl.Offset(), keys)
	}
	s.files = append(s.files, f)
	m.files[f.id] = f
	if f.seenGen == m.gen {
		m.byPath[f.path] = f
	}
	m.subjects[s.source] = s
	if m.open > m.opts.MaxOpenFiles && f.seenGen >= m.doneGen {
		tl.Close() // reopened at its path when read: max_open_files holds from the first scan on
		m.open--
	}
	m.met.open.Set(float64(m.open))
	m.enqueueLocked(s)
}

// findRotated looks next to path for the file a subject's last chunk came from (logrotate
// renames app.log to app.log.1, app.log-20240101, …) and returns it, open at that chunk's
// end, if it has more to read.
func (m *Monitor) findRotated(path string, pos *streams.FilePos) *file {
	dir, base := filepath.Split(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	ents, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil
	}
	for _, e := range ents {
		name := e.Name()
		if name == base || !strings.HasPrefix(name, stem) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if id, _ := StatID(fi); id != (FileID{pos.Dev, pos.Ino}) || fi.Size() < pos.End {
			continue
		}
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		if ok, _ := VerifyHead(fh, pos.End, pos.Fingerprint); !ok || fi.Size() == pos.End {
			fh.Close()
			return nil
		}
		head, _ := readHead(fh, pos.End)
		id := FileID{pos.Dev, pos.Ino}
		m.mu.Lock()
		gen := m.gen
		m.mu.Unlock()
		f := &file{id: id, path: p, src: path, seenGen: gen, sizeSeen: fi.Size(), keys: m.keysOf(fh, pos.End, head)}
		f.tl = NewTailer(&m.cfg, path, fh, id, pos.End, head, time.Now())
		m.log.Info("file monitor: draining rotated file first", zap.String("path", p), zap.String("subject_path", path), zap.Int64("offset", pos.End))
		return f
	}
	return nil
}

// poll hands the readers every file whose size moved, that holds a partial line, that was
// rotated or removed; and updates bytes_behind.
func (m *Monitor) poll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var behind int64
	for _, s := range m.subjects {
		for _, f := range s.files {
			behind += f.behind
		}
		if s.busy || s.queued || s.stopped || len(s.files) == 0 {
			continue
		}
		f := s.files[0]
		t := f.tl
		if f.after != nil {
			if !f.after.live {
				m.enqueueLocked(s) // the file it is a copy of is done: it can go on
			}
			continue
		}
		if len(s.files) > 1 || f.seenGen < m.doneGen || t.Wants(f.sizeSeen) || t.Buffered() || t.Removed() || f.kvDirty {
			m.enqueueLocked(s)
		}
	}
	m.met.behind.Set(float64(behind))
}

func (m *Monitor) enqueueLocked(s *subject) {
	if s.busy {
		s.again = true
		return
	}
	if s.queued {
		return
	}
	s.queued = true
	m.queue = append(m.queue, s)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Monitor) take(ctx context.Context) *subject {
	for {
		m.mu.Lock()
		if len(m.queue) > 0 {
			s := m.queue[0]
			m.queue[0] = nil
			m.queue = m.queue[1:]
			s.queued, s.busy = false, true
			if len(m.queue) > 0 {
				select {
				case m.wake <- struct{}{}:
				default:
				}
			}
			m.mu.Unlock()
			return s
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		}
	}
}

// Read is one reader: it takes a file with work, publishes its next chunk (waiting for the
// ack: when JetStream is slow, reading stops), and moves on. It blocks until ctx is done.
func (m *Monitor) Read(ctx context.Context) error {
	select {
	case <-m.ready:
	case <-ctx.Done():
		return nil
	}
	for {
		s := m.take(ctx)
		if s == nil {
			return nil
		}
		more := m.service(ctx, s)
		m.mu.Lock()
		s.busy = false
		if len(s.files) > 0 {
			s.files[0].behind = s.files[0].tl.Behind()
		}
		if (more || s.again) && ctx.Err() == nil && len(s.files) > 0 {
			s.again = false
			m.enqueueLocked(s)
		}
		m.mu.Unlock()
	}
}

func (m *Monitor) setOpen(delta int) {
	m.mu.Lock()
	m.open += delta
	m.met.open.Set(float64(m.open))
	m.mu.Unlock()
}

func (m *Monitor) putPos(ctx context.Context, f *file, s *subject) {
	r := posRecord{Source: s.source, FP: f.tl.FP(), End: f.tl.Offset()}
	if f.tl.Done() {
		r.GzipDone, r.GzipSize = true, f.tl.Size()
	}
	if err := m.kvPut(ctx, f.id, r); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("file monitor: position not saved (the stream still has it)", zap.Error(err))
		}
		return
	}
	f.kvDirty, f.kvAt = false, time.Now()
}

// service moves one subject forward by at most one chunk. It reports whether there is
// more to do at once.
func (m *Monitor) service(ctx context.Context, s *subject) bool {
	m.mu.Lock()
	if len(s.files) == 0 || s.stopped {
		m.mu.Unlock()
		return false
	}
	f := s.files[0]
	if f.after != nil {
		if f.after.live {
			m.mu.Unlock()
			return false
		}
		f.tl.SkipTo(f.after.end)
		f.after = nil
	}
	var succ *file
	var succPath string
	if len(s.files) > 1 {
		succ, succPath = s.files[1], s.files[1].path
	}
	path, away := f.path, f.seenGen < m.doneGen
	m.mu.Unlock()
	defer m.bound(f, away)
	t := f.tl
	now := time.Now()
	if !t.IsOpen() {
		if err := t.Reopen(path); err != nil {
			if errors.Is(err, ErrNotSameFile) || errors.Is(err, fs.ErrNotExist) {
				// it was rotated while closed to stay under max_open_files
				m.finish(s, f, false)
				m.noteLost(path, s.source, fmt.Sprintf("it left its path while closed to stay under max_open_files; what it got after offset %d is not read", t.Offset()))
				return true
			}
			m.noteErr(path, fmt.Errorf("reopen %s: %w", path, err), zap.ErrorLevel)
			return false
		}
		m.setOpen(1)
	}
	final := false
	switch {
	case t.Compressed():
		// a gzip file ends with its stream: a successor or an idle spell says nothing of it
		final = t.Done() || (t.Removed() || away) && t.Idle(now) >= m.cfg.CloseRemovedAfter
	case succ != nil:
		// A writer that reopened its file writes to the successor only after it stopped
		// writing here: look at the successor BEFORE reading this file to its end.
		if succ.tl.HasData(succPath) || t.Idle(now) >= m.cfg.CloseRemovedAfter {
			final = true
		}
	case t.Removed() || away:
		final = t.Idle(now) >= m.cfg.CloseRemovedAfter
	}
	c, err := t.Next(now, final)
	final = final || t.Done() // a gzip stream that ended in this call
	m.noteTruncations(f)
	if err != nil {
		m.noteErr(path, fmt.Errorf("read %s: %w", path, err), zap.ErrorLevel)
		return false
	}
	if c != nil {
		start := time.Now()
		if _, err := s.pub.Publish(ctx, t.Msg(c)); err != nil {
			if ctx.Err() != nil {
				return false
			}
			m.met.errs.Inc()
			if errors.Is(err, streams.ErrFenced) {
				m.log.Error("file monitor: another writer publishes this file: stopped reading it", zap.String("path", path), zap.Error(err))
				m.mu.Lock()
				s.stopped = true
				m.mu.Unlock()
				return false
			}
			m.log.Error("file monitor: publish failed", zap.String("path", path), zap.Error(err))
			return false
		}
		m.met.publish.Observe(time.Since(start).Seconds())
		t.Commit()
		m.mu.Lock()
		m.committedLocked(f.content, c.File.Fingerprint, c.File.End)
		m.mu.Unlock()
		m.noteTruncations(f)
		m.met.split.Add(float64(t.SplitLines - f.splits)) // counted once published
		f.splits = t.SplitLines
		m.met.lines.Add(float64(c.Lines))
		m.met.bytes.Add(float64(len(c.Data)))
		m.met.chunks.Inc()
		f.kvDirty = true
		if now.Sub(f.kvAt) >= time.Second {
			m.putPos(ctx, f, s)
		}
		if !t.Drained() || final {
			return true
		}
	}
	if !t.Drained() {
		return t.Busy() // a partial line or multiline entry is held; or a gzip skip goes on
	}
	if f.kvDirty && (final || now.Sub(f.kvAt) >= time.Second) {
		m.putPos(ctx, f, s)
	}
	if final {
		// Record the end before the next file of the subject is published: a restart must
		// find this file complete.
		if f.kvDirty {
			return false
		}
		if err := t.Err(); err != nil {
			m.gzipFailed(path, err, t.Offset())
		}
		m.finish(s, f, !t.Compressed())
		return true
	}
	t.Release()
	return false
}

// noteTruncations counts the truncations the tailer found since the last look; each ends
// a generation of the file's content.
func (m *Monitor) noteTruncations(f *file) {
	d := f.tl.Truncations - f.truncs
	if d <= 0 {
		return
	}
	f.truncs = f.tl.Truncations
	m.met.truncations.Add(float64(d))
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := f.content; c != nil {
		m.retireLocked(c)
		f.content = m.newContentLocked(c.source, 0, headKeys{})
	}
}

// bound closes the file of a tailer that is not being read when more than max_open_files
// are open: a file waiting in the queue must not hold a descriptor either. Rotated-away and
// removed files keep theirs: their path no longer leads to them.
func (m *Monitor) bound(f *file, away bool) {
	t := f.tl
	if t == nil || !t.IsOpen() || away || t.Removed() {
		return
	}
	m.mu.Lock()
	over := m.open > m.opts.MaxOpenFiles
	m.mu.Unlock()
	if over {
		t.Close()
		m.setOpen(-1)
	}
}

// finish drops a drained file from its subject.
func (m *Monitor) finish(s *subject, f *file, rotated bool) {
	wasOpen, size := f.tl.IsOpen(), f.tl.Size()
	f.tl.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	if wasOpen {
		m.open--
		m.met.open.Set(float64(m.open))
	}
	if rotated {
		m.met.rotations.Inc()
	}
	s.files = slices.DeleteFunc(s.files, func(x *file) bool { return x == f })
	f.subj, f.tl, f.doneSize = nil, nil, size
	m.retireLocked(f.content)
	if f.seenGen < m.doneGen {
		delete(m.files, f.id)
	}
	if len(s.files) == 0 && m.subjects[s.source] == s {
		delete(m.subjects, s.source)
	}
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

// Stats is a snapshot for tests and the admin endpoint.
type Stats struct {
	Subjects, Files, Open int
	Scans                 int
}

// Stats returns counts of what the monitor tracks.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Subjects: len(m.subjects), Files: len(m.files), Open: m.open, Scans: m.gen}
}
