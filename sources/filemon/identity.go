package filemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"syscall"
)

// FingerprintBytes is how much of a file's beginning its fingerprint covers at most.
const FingerprintBytes = 1024

// Fingerprint identifies a file's content by its first bytes: the hex of a SHA-256 prefix
// of head[:min(len(head), FingerprintBytes)]. A chunk's fingerprint covers the first
// min(1024, chunk end) bytes, i.e. only bytes logcap has read and published: a short file's
// fingerprint grows with it until it covers 1 KiB, and resume can always recompute it from
// the file (see VerifyHead).
func Fingerprint(head []byte) string {
	if len(head) > FingerprintBytes {
		head = head[:FingerprintBytes]
	}
	sum := sha256.Sum256(head)
	return hex.EncodeToString(sum[:8])
}

// FileID is a file's device and inode.
type FileID struct{ Dev, Ino uint64 }

func (id FileID) String() string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

// StatID returns the device and inode of fi (a Unix stat).
func StatID(fi os.FileInfo) (FileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{}, false
	}
	return FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true
}

func nlink(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// readHead reads the first min(n, FingerprintBytes) bytes of f (fewer if the file is shorter).
func readHead(f io.ReaderAt, n int64) ([]byte, error) {
	n = min(n, FingerprintBytes)
	b := make([]byte, n)
	m, err := f.ReadAt(b, 0)
	if err == io.EOF {
		err = nil
	}
	return b[:m], err
}

// VerifyHead reports whether the file's first min(end, 1 KiB) bytes have fingerprint fp:
// whether f is (still) the file a chunk ending at end was read from.
func VerifyHead(f io.ReaderAt, end int64, fp string) (bool, error) {
	head, err := readHead(f, end)
	if err != nil {
		return false, err
	}
	if int64(len(head)) < min(end, FingerprintBytes) {
		return false, nil // shorter than what was read: truncated
	}
	return Fingerprint(head) == fp, nil
}

// headChanged reports whether the file no longer begins with head: it was truncated and
// written again (copytruncate with a fast writer) even though its size passed our offset.
func headChanged(f io.ReaderAt, head []byte) (bool, error) {
	if len(head) == 0 {
		return false, nil
	}
	now, err := readHead(f, int64(len(head)))
	if err != nil {
		return false, err
	}
	return !bytes.Equal(now, head), nil
}
