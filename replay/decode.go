package replay

import (
	"bytes"
	"strconv"

	"github.com/logcap/logcap/streams"
)

// countEntries is the number of entries a message carries, from its header when it has one
// (raw and derived chunks both set it), else its lines.
func countEntries(m Msg) int {
	if n, err := strconv.Atoi(m.Header.Get(streams.HdrLines)); err == nil && n >= 0 {
		return n
	}
	n := bytes.Count(m.Data, []byte{'\n'})
	if len(m.Data) > 0 && m.Data[len(m.Data)-1] != '\n' {
		n++
	}
	return n
}
