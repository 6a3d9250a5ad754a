package streams

import "github.com/logcap/logcap/memlimit"

// MemoryGate is memlimit.MemoryGate, which moved out of streams (memory policy is not wire
// format). The alias keeps sources/filemon building until its rewrite names memlimit
// itself; delete it then.
type MemoryGate = memlimit.MemoryGate
