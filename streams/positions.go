package streams

import (
	"encoding/json"
	"fmt"
	"strings"
)

// PositionsBucket is the KV bucket of file positions: the fallback for when retention has
// removed a file's last message from LOGS, and the memory of which subject a renamed file
// belongs to (package doc, "Positions").
const PositionsBucket = "logcap_positions"

// FilePosition is a file's record in PositionsBucket, JSON under PositionKey.
type FilePosition struct {
	Source string `json:"source"` // the path whose subject the file is published under
	FP     string `json:"fp"`     // fingerprint of the file's first min(End, 1 KiB) bytes
	End    int64  `json:"end"`    // the offset stored up to
	// Seq is the stream sequence of the subject's last chunk when End was recorded. A record
	// whose Seq is above the subject's last message in the stream outlived the stream's end
	// (a store damaged by a crash or a power loss): the stream, not the record, says where the
	// lines still to publish start. 0 in records written before it was kept.
	Seq uint64 `json:"seq,omitempty"`
	// a gzip file read as far as it goes (to its end, or given up) at this compressed size
	GzipDone bool  `json:"gzip_done,omitempty"`
	GzipSize int64 `json:"gzip_size,omitempty"`
}

// Encode is the record's KV value.
func (p FilePosition) Encode() []byte {
	b, _ := json.Marshal(p) // strings, numbers and a bool: cannot fail
	return b
}

// DecodeFilePosition reads a record back from its KV value.
func DecodeFilePosition(b []byte) (*FilePosition, error) {
	var p FilePosition
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("file position: %w", err)
	}
	return &p, nil
}

// PositionKey is the key of the file of identity (dev, ino) on host:
// pos.<host>.<dev>.<ino>.
func PositionKey(host string, dev, ino uint64) string {
	return fmt.Sprintf("pos.%s.%d.%d", kvToken(host), dev, ino)
}

// PositionsOf is the key filter of every file position of host: pos.<host>.>.
func PositionsOf(host string) string { return fmt.Sprintf("pos.%s.>", kvToken(host)) }

// SourceMarkerKey is the key that is present once file source name on host has started:
// source.<host>.<name>. Without it a start is the first, and start_at applies.
func SourceMarkerKey(host, name string) string {
	return fmt.Sprintf("source.%s.%s", kvToken(host), kvToken(name))
}

// kvToken is s as one KV key token: ASCII letters, digits, '-' and '_' as themselves, any
// other byte as =XX (hex); "" is "=".
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
