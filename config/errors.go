package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// FieldError is one problem in a config file, printed on one line as
// `FILE:LINE: PATH: MSG` so editors and CI logs can jump to it.
type FieldError struct {
	File string // the path as the user gave it; "" for a programmatic config
	Line int    // 1-based; 0 when unknown
	Path string // key path such as "sinks[1].url"; "" for file-level errors (syntax)
	Msg  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a config file, so a user fixes them all in one pass.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a *FieldError inside.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, nil when empty (a nil Errors in an error interface is not nil).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sortByLine orders errors as they appear in the file; errors without a line keep their order.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line == 0 || es[j].Line == 0 {
			return false
		}
		return es[i].Line < es[j].Line
	})
}

// yamlError turns a goccy error (which prints a multi-line source excerpt) into one line.
func yamlError(file string, err error) *FieldError {
	var ye yaml.Error
	if errors.As(err, &ye) {
		fe := &FieldError{File: file, Msg: oneLine(ye.GetMessage())}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			fe.Line = tk.Position.Line
		}
		return fe
	}
	return &FieldError{File: file, Msg: oneLine(err.Error())}
}

// oneLine keeps the first line of a message: goccy appends source excerpts after a newline.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	// goccy prefixes some messages with their position; the line is in FieldError already.
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "] "); i > 0 && i < 12 {
			s = s[i+2:]
		}
	}
	return s
}
