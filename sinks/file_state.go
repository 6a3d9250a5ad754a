package sinks

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The position file (".<name>.logcap-pos" next to the output) holds two fixed-size slots that
// are overwritten in turn, each with a generation number and a checksum. Overwriting in place
// needs one fsync and no directory fsync (a rename would need both), and a write torn by a
// crash only ever damages the slot being written: the other one still holds the previous
// commit, which is the right state because the torn commit's batch was never acknowledged.
const (
	posSlotSize   = 8192
	posHeaderSize = 4 + 8 + 4 + 4 // magic, generation, payload length, crc32
	posMagic      = "LCP1"
)

// fileState is what a commit makes durable for one output file.
type fileState struct {
	Size    int64                `json:"size"`    // bytes of the output that are committed
	Created time.Time            `json:"created"` // when the output was started, for max_age
	Streams map[string]streamPos `json:"streams"` // last record written, per JetStream stream
}

type streamPos struct {
	Seq   uint64 `json:"seq"`
	Index int    `json:"index"`
	ID    string `json:"id,omitempty"` // the Nats-Msg-Id at Seq, to notice a stream that went backwards
}

// written reports whether r is at or before the position committed for its stream. Records
// without a sequence (Seq 0) have no identity and are always written.
func (st *fileState) written(r *Record) bool {
	p, ok := st.Streams[r.Stream]
	if !ok || r.Seq == 0 {
		return false
	}
	return r.Seq < p.Seq || r.Seq == p.Seq && r.Index <= p.Index
}

func (st fileState) clone() fileState {
	c := st
	c.Streams = make(map[string]streamPos, len(st.Streams))
	for k, v := range st.Streams {
		c.Streams[k] = v
	}
	return c
}

// outFile is one open output file with its position file.
type outFile struct {
	path    string
	f       *os.File // opened O_APPEND
	pos     *os.File
	state   fileState // last committed
	gen     uint64    // generation of the last committed slot
	lastUse uint64
}

func posPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".logcap-pos")
}

// openOutFile opens (creating if needed) an output file and its position file, and repairs
// the output: bytes past the committed size were written by a Write that never returned,
// so their batch was never acknowledged and will be delivered again — they are cut off.
func openOutFile(path string, durable bool, now time.Time) (*outFile, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	of := &outFile{path: path, f: f}
	fail := func(err error) (*outFile, error) {
		_ = of.close()
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	pp := posPath(path)
	_, statErr = os.Stat(pp)
	created = created || errors.Is(statErr, fs.ErrNotExist)
	if of.pos, err = os.OpenFile(pp, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	st, gen, found, err := readPos(of.pos)
	if err != nil {
		return fail(fmt.Errorf("position file %s: %w", pp, err))
	}
	if !found {
		// A file that existed before logcap's first write is kept as it is.
		st = fileState{Size: size, Created: now, Streams: map[string]streamPos{}}
		if !created {
			st.Created = fi.ModTime()
		}
	}
	switch {
	case size > st.Size:
		if err := f.Truncate(st.Size); err != nil {
			return fail(fmt.Errorf("cut uncommitted tail: %w", err))
		}
		if durable {
			if err := f.Sync(); err != nil {
				return fail(err)
			}
		}
	case size < st.Size:
		// The output was rotated, moved or truncated by someone else after the last commit:
		// keep the positions (those records were delivered) and continue from what is there.
		st.Size = size
		if size == 0 {
			st.Created = now
		}
	}
	of.state, of.gen = st, gen
	if !found {
		// Commit before the first data write, so that a crash during it can be repaired.
		if err := of.commit(st, durable); err != nil {
			return fail(err)
		}
	}
	if created && durable {
		// A new file's directory entry must be durable too, or a power loss after an
		// acknowledged write could take the file and its positions with it.
		if err := syncDir(dir); err != nil {
			return fail(err)
		}
	}
	return of, nil
}

// readPos returns the newest valid slot.
func readPos(f *os.File) (st fileState, gen uint64, found bool, err error) {
	buf := make([]byte, 2*posSlotSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return st, 0, false, err
	}
	buf = buf[:n]
	for i := 0; i < 2; i++ {
		lo := i * posSlotSize
		if lo+posHeaderSize > len(buf) {
			break
		}
		slot := buf[lo:min(lo+posSlotSize, len(buf))]
		if string(slot[:4]) != posMagic {
			continue
		}
		g := binary.BigEndian.Uint64(slot[4:12])
		l := int(binary.BigEndian.Uint32(slot[12:16]))
		sum := binary.BigEndian.Uint32(slot[16:20])
		if posHeaderSize+l > len(slot) || crc32.ChecksumIEEE(slot[4:16]) != sum^crc32.ChecksumIEEE(slot[posHeaderSize:posHeaderSize+l]) {
			continue // torn or never written
		}
		var s fileState
		if json.Unmarshal(slot[posHeaderSize:posHeaderSize+l], &s) != nil {
			continue
		}
		if !found || g > gen {
			st, gen, found = s, g, true
		}
	}
	if found && st.Streams == nil {
		st.Streams = map[string]streamPos{}
	}
	return st, gen, found, nil
}

// commit makes st the file's committed state.
func (of *outFile) commit(st fileState, durable bool) error {
	payload, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("file %s: position: %w", of.path, err)
	}
	if posHeaderSize+len(payload) > posSlotSize {
		return Permanent(fmt.Errorf("file %s: position: %d streams do not fit the position file", of.path, len(st.Streams)))
	}
	gen := of.gen + 1
	slot := make([]byte, posHeaderSize+len(payload))
	copy(slot, posMagic)
	binary.BigEndian.PutUint64(slot[4:12], gen)
	binary.BigEndian.PutUint32(slot[12:16], uint32(len(payload)))
	binary.BigEndian.PutUint32(slot[16:20], crc32.ChecksumIEEE(slot[4:16])^crc32.ChecksumIEEE(payload))
	copy(slot[posHeaderSize:], payload)
	if _, err := of.pos.WriteAt(slot, int64(gen%2)*posSlotSize); err != nil {
		return fmt.Errorf("file %s: position: %w", of.path, err)
	}
	if durable {
		if err := of.pos.Sync(); err != nil {
			return fmt.Errorf("file %s: position: fsync: %w", of.path, err)
		}
	}
	of.state, of.gen = st, gen
	return nil
}

// checkStreams asks check, once per stream, whether a position that would skip records of
// idx still names the message it was recorded at; a stream that went backwards loses its
// position, so that its re-used sequence numbers are written, not skipped.
func (of *outFile) checkStreams(ctx context.Context, check StreamCheck, batch []Record, idx []int) error {
	var checked map[string]bool
	for _, i := range idx {
		r := &batch[i]
		if checked[r.Stream] || !of.state.written(r) {
			continue
		}
		if checked == nil {
			checked = map[string]bool{}
		}
		checked[r.Stream] = true
		pos := of.state.Streams[r.Stream]
		same, err := check(ctx, r.Stream, pos.Seq, pos.ID)
		if err != nil {
			return fmt.Errorf("file %s: check %s seq %d before skipping records as written: %w", of.path, r.Stream, pos.Seq, err)
		}
		if !same {
			delete(of.state.Streams, r.Stream)
		}
	}
	return nil
}

// pending is a file's share of a batch: the bytes to append and the state after them.
type pending struct {
	data  []byte
	ends  []int // end offset in data of each record, for fsync always
	state fileState
}

// prepare encodes the records of batch at idx that are not yet in the file. Whether a record
// was written is decided against the committed position, not one advanced within the batch,
// so a batch whose records are out of order loses none.
// buf is reused for the bytes.
func (of *outFile) prepare(buf []byte, batch []Record, idx []int, format string) (pending, error) {
	p := pending{data: buf[:0], state: of.state.clone()}
	for _, i := range idx {
		r := &batch[i]
		if of.state.written(r) {
			continue
		}
		var err error
		if p.data, err = appendLine(p.data, r, format); err != nil {
			return p, Permanent(fmt.Errorf("file %s: record %s: %w", of.path, r.ID(), err))
		}
		p.ends = append(p.ends, len(p.data))
		if r.Seq == 0 {
			continue
		}
		if cur, ok := p.state.Streams[r.Stream]; !ok || r.Seq > cur.Seq || r.Seq == cur.Seq && r.Index > cur.Index {
			p.state.Streams[r.Stream] = streamPos{Seq: r.Seq, Index: r.Index, ID: r.MsgID}
		}
	}
	p.state.Size += int64(len(p.data))
	return p, nil
}

// appendData writes p's bytes and makes them durable as fsync asks.
func (of *outFile) appendData(p pending, fsync string) error {
	if fsync == fsyncAlways {
		start := 0
		for _, end := range p.ends {
			if _, err := of.f.Write(p.data[start:end]); err != nil {
				return fmt.Errorf("file %s: write: %w", of.path, err)
			}
			if err := of.f.Sync(); err != nil {
				return fmt.Errorf("file %s: fsync: %w", of.path, err)
			}
			start = end
		}
		return nil
	}
	if _, err := of.f.Write(p.data); err != nil {
		return fmt.Errorf("file %s: write: %w", of.path, err)
	}
	if fsync == fsyncBatch {
		if err := of.f.Sync(); err != nil {
			return fmt.Errorf("file %s: fsync: %w", of.path, err)
		}
	}
	return nil
}

func (of *outFile) close() error {
	var errs []error
	if of.f != nil {
		errs = append(errs, of.f.Close())
	}
	if of.pos != nil {
		errs = append(errs, of.pos.Close())
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// dueForRotation reports whether of must be rotated before n more bytes go in. A batch is
// never split across files, so a file can exceed max_size by at most one batch.
func (s *FileSink) dueForRotation(of *outFile, n int) bool {
	r := s.rotate
	if of.state.Size == 0 {
		return false
	}
	if r.MaxSize > 0 && of.state.Size+int64(n) > int64(r.MaxSize) {
		return true
	}
	return r.MaxAge > 0 && s.now().Sub(of.state.Created) >= r.MaxAge.D()
}

// rotateFile renames x.log to x.log.1 (shifting x.log.1 to x.log.2 and so on, dropping the
// oldest beyond max_files), starts an empty x.log and commits that, then gzips x.log.1. It is
// only called at a committed point, so a crash anywhere in it loses no acknowledged data: on
// reopen a missing or empty x.log is smaller than the committed size and is taken as is, with
// the positions kept.
func (s *FileSink) rotateFile(of *outFile) error {
	durable := s.fsync != fsyncNever
	if err := of.f.Close(); err != nil {
		return fmt.Errorf("file %s: rotate: %w", of.path, err)
	}
	of.f = nil
	name := func(i int, gz bool) string {
		n := of.path + "." + strconv.Itoa(i)
		if gz {
			n += ".gz"
		}
		return n
	}
	for _, gz := range []bool{false, true} {
		if err := os.Remove(name(s.rotate.MaxFiles, gz)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file %s: rotate: %w", of.path, err)
		}
	}
	for i := s.rotate.MaxFiles - 1; i >= 1; i-- {
		for _, gz := range []bool{false, true} {
			if err := os.Rename(name(i, gz), name(i+1, gz)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("file %s: rotate: %w", of.path, err)
			}
		}
	}
	if err := os.Rename(of.path, name(1, false)); err != nil {
		return fmt.Errorf("file %s: rotate: %w", of.path, err)
	}
	f, err := os.OpenFile(of.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("file %s: rotate: %w", of.path, err)
	}
	of.f = f
	if durable {
		if err := syncDir(filepath.Dir(of.path)); err != nil {
			return fmt.Errorf("file %s: rotate: %w", of.path, err)
		}
	}
	st := of.state.clone()
	st.Size, st.Created = 0, s.now()
	if err := of.commit(st, durable); err != nil {
		return err
	}
	if s.rotate.Compress {
		if err := gzipFile(name(1, false), durable); err != nil {
			return fmt.Errorf("file %s: rotate: %w", of.path, err)
		}
	}
	return nil
}

// gzipFile replaces path by path.gz, via a temporary file so a crash never leaves a
// truncated .gz under the final name.
func gzipFile(path string, durable bool) (err error) {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = out.Close()
			_ = os.Remove(tmp)
		}
	}()
	zw := gzip.NewWriter(out)
	if _, err = io.Copy(zw, in); err != nil {
		return fmt.Errorf("gzip %s: %w", path, err)
	}
	if err = zw.Close(); err != nil {
		return fmt.Errorf("gzip %s: %w", path, err)
	}
	if durable {
		if err = out.Sync(); err != nil {
			return err
		}
	}
	if err = out.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path+".gz"); err != nil {
		return err
	}
	return os.Remove(path)
}
