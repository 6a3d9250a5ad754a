// Command logtest is the program of the containers the CRI tests run (internal/critest):
// a static binary in a FROM-scratch image.
//
//	logtest pause                         wait for SIGTERM (the pod sandbox's program)
//	logtest lines ID N LONG_EVERY LONG_BYTES PAUSE_US [hold]
//
// "lines" writes N numbered lines, one write each, line i to stderr when i%3 == 2 and to
// stdout otherwise; every LONG_EVERY-th line is LONG_BYTES long (the runtime splits it into
// 16 KiB parts). A line is `ID i LEN pad…`, LEN its own length without '\n', so a reader can
// tell whole lines from cut ones. It sleeps PAUSE_US microseconds between lines. With
// "hold" it then waits for SIGTERM: the test decides when it exits, as a rotation's
// ReopenContainerLog needs a running container however fast the lines were written.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "logtest:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) >= 1 && args[0] == "pause" {
		waitTerm()
		return nil
	}
	hold := len(args) == 7 && args[6] == "hold"
	if hold {
		args = args[:6]
	}
	if len(args) != 6 || args[0] != "lines" {
		return fmt.Errorf("usage: logtest pause | logtest lines ID N LONG_EVERY LONG_BYTES PAUSE_US [hold]")
	}
	var nums [4]int
	for i, a := range args[2:] {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 {
			return fmt.Errorf("argument %q: not a count", a)
		}
		nums[i] = n
	}
	id, n, every, long, pause := args[1], nums[0], nums[1], nums[2], time.Duration(nums[3])*time.Microsecond
	for i := range n {
		size := 40
		if every > 0 && i%every == every-1 {
			size = long
		}
		if err := write(id, i, size); err != nil {
			return err
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	if hold {
		waitTerm()
	}
	return nil
}

func waitTerm() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

func write(id string, i, size int) error {
	head := fmt.Sprintf("%s %d ", id, i)
	// the length field's own digits count: find the fixed point
	l := size
	for range 3 {
		l = max(size, len(head)+len(strconv.Itoa(l))+1)
	}
	line := head + strconv.Itoa(l) + " "
	line += strings.Repeat("x", max(l-len(line), 0)) + "\n"
	out := os.Stdout
	if i%3 == 2 {
		out = os.Stderr
	}
	_, err := out.WriteString(line)
	return err
}
