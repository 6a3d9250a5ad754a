//go:build race

package filemon_test

// The race detector slows the 10,000-file test ~6x: it runs with fewer files there.
const raceEnabled = true
