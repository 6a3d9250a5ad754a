//go:build !race

package filemon

const raceEnabled = false
