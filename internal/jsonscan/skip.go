package jsonscan

// Skip reads one value, white space before it skipped, and builds nothing: for a reader that
// does not want the value (a sink writing raw lines skips a derived entry's fields). It
// accepts exactly what Value accepts — the JSON grammar, with encoding/json's leniency for
// invalid UTF-8 in strings — so that skipping never says yes where reading says no.
func (d *Decoder) Skip() bool {
	d.SkipSpace()
	if d.i >= len(d.s) {
		return false
	}
	switch c := d.s[d.i]; c {
	case '{':
		return d.skipObject()
	case '[':
		return d.skipArray()
	case '"':
		d.i++
		return d.skipString()
	case 't':
		return d.Literal("true")
	case 'f':
		return d.Literal("false")
	case 'n':
		return d.Literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return d.scanNumber() // no value built: Number would box it
		}
		return false
	}
}

func (d *Decoder) skipObject() bool {
	if !d.Consume('{') || d.depth >= maxDepth {
		return false
	}
	d.depth++
	defer func() { d.depth-- }()
	d.SkipSpace()
	if d.Consume('}') {
		return true
	}
	for {
		d.SkipSpace()
		if !d.Consume('"') || !d.skipString() {
			return false
		}
		d.SkipSpace()
		if !d.Consume(':') || !d.Skip() {
			return false
		}
		d.SkipSpace()
		if d.Consume(',') {
			continue
		}
		return d.Consume('}')
	}
}

func (d *Decoder) skipArray() bool {
	if !d.Consume('[') || d.depth >= maxDepth {
		return false
	}
	d.depth++
	defer func() { d.depth-- }()
	d.SkipSpace()
	if d.Consume(']') {
		return true
	}
	for {
		if !d.Skip() {
			return false
		}
		d.SkipSpace()
		if d.Consume(',') {
			continue
		}
		return d.Consume(']')
	}
}

// skipString reads the rest of a string whose opening quote was read: escapes checked as
// String checks them, control characters refused, any other byte (invalid UTF-8 included,
// which String turns into U+FFFD) taken.
func (d *Decoder) skipString() bool {
	s := d.s
	for i := d.i; ; {
		i += plainRun(s[i:])
		if i >= len(s) {
			return false
		}
		switch c := s[i]; {
		case c == '"':
			d.i = i + 1
			return true
		case c == '\\':
			n := escapeLen(s[i:])
			if n == 0 {
				return false
			}
			i += n
		case c < ' ':
			return false
		default:
			i++ // a byte ≥ 0x80
		}
	}
}

// escapeLen is the length of the valid escape at the start of s, 0 if it is not one. A
// \u escape is six bytes whatever follows: a lone or broken surrogate is U+FFFD, not an error.
func escapeLen(s string) int {
	if len(s) < 2 {
		return 0
	}
	switch s[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if getu4(s) < 0 {
			return 0
		}
		return 6
	}
	return 0
}
