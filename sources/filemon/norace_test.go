//go:build !race

package filemon_test

const raceEnabled = false
