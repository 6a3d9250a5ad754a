//go:build race

package pipeline_test

// The race detector slows the pipeline ~5x; the big-volume tests scale down under it so that
// `go test -race` of the package stays within a minute. Without -race they run full size.
const raceEnabled = true
