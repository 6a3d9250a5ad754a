package sinks

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// syslogFacilities are the facility names of RFC 5424 section 6.2.1 (and their usual aliases).
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"clock": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
	"local5": 21, "local6": 22, "local7": 23,
}

// syslogSeverities maps the level names loggers commonly use to syslog severities.
var syslogSeverities = map[string]int{
	"emerg": 0, "emergency": 0, "panic": 0,
	"alert": 1,
	"crit":  2, "critical": 2, "fatal": 2,
	"err": 3, "error": 3, "eror": 3,
	"warn": 4, "warning": 4,
	"notice": 5,
	"info":   6, "informational": 6, "information": 6,
	"debug": 7, "trace": 7, "dbug": 7,
}

const syslogSeverityInfo = 6

// SyslogFacility is a facility given by name ("local0") or number (0-23).
type SyslogFacility int

// UnmarshalText accepts a facility name or number.
func (f *SyslogFacility) UnmarshalText(b []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(b)))
	if n, ok := syslogFacilities[s]; ok {
		*f = SyslogFacility(n)
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 23 {
		return fmt.Errorf("invalid facility %q (want a name such as user or local0, or 0-23)", s)
	}
	*f = SyslogFacility(n)
	return nil
}

// syslogSeverity reads the severity from fields.level: a name (case-insensitive) or 0-7.
func syslogSeverity(fields map[string]any) int {
	switch v := fields["level"].(type) {
	case string:
		s := strings.ToLower(strings.TrimSpace(v))
		if n, ok := syslogSeverities[s]; ok {
			return n
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 7 {
			return n
		}
	case float64:
		if v >= 0 && v <= 7 && v == float64(int(v)) {
			return int(v)
		}
	case int:
		if v >= 0 && v <= 7 {
			return v
		}
	case int64:
		if v >= 0 && v <= 7 {
			return int(v)
		}
	case uint64:
		if v <= 7 {
			return int(v)
		}
	}
	return syslogSeverityInfo
}

// appendPrintASCII appends s restricted to PRINTUSASCII (33-126, RFC 5424 section 6), other
// bytes replaced by '_', cut to max bytes; "-" (the NILVALUE) when s is empty.
func appendPrintASCII(buf []byte, s string, max int) []byte {
	if s == "" {
		return append(buf, '-')
	}
	for i := 0; i < len(s) && i < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		buf = append(buf, c)
	}
	return buf
}

// appendSDValue appends an SD-PARAM value with '"', '\' and ']' escaped (RFC 5424 6.3.3),
// invalid UTF-8 replaced, as PARAM-VALUE must be UTF-8.
func appendSDValue(buf []byte, v string) []byte {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', ']':
			buf = append(buf, '\\', c)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// syslogMsg is the MSG part: the message, or the raw bytes when there is no message.
func syslogMsg(r *Record) string {
	if r.Message == "" && r.Raw != nil {
		return string(r.Raw)
	}
	return r.Message
}

// appendRFC5424 appends r as an RFC 5424 message (without framing):
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME - - [logcap@32473 kind=".." stream=".."] MSG
func appendRFC5424(buf []byte, r *Record, facility int) []byte {
	buf = append(buf, '<')
	buf = strconv.AppendInt(buf, int64(facility*8+syslogSeverity(r.Fields)), 10)
	buf = append(buf, ">1 "...)
	if r.Time.IsZero() {
		buf = append(buf, '-')
	} else {
		// RFC 5424 allows at most 6 fractional digits.
		buf = r.Time.UTC().AppendFormat(buf, "2006-01-02T15:04:05.000000Z07:00")
	}
	buf = append(buf, ' ')
	buf = appendPrintASCII(buf, r.Host, 255)
	buf = append(buf, ' ')
	buf = appendPrintASCII(buf, r.Source, 48)
	buf = append(buf, " - - "...)
	if r.Kind == "" && r.Entry.Stream == "" {
		buf = append(buf, '-')
	} else {
		// 32473 is the private enterprise number RFC 5612 reserves for documentation.
		buf = append(buf, "[logcap@32473"...)
		if r.Kind != "" {
			buf = append(buf, ` kind="`...)
			buf = appendSDValue(buf, r.Kind)
			buf = append(buf, '"')
		}
		if r.Entry.Stream != "" {
			buf = append(buf, ` stream="`...)
			buf = appendSDValue(buf, r.Entry.Stream)
			buf = append(buf, '"')
		}
		buf = append(buf, ']')
	}
	if msg := syslogMsg(r); msg != "" {
		buf = append(buf, ' ')
		buf = append(buf, msg...)
	}
	return buf
}

// appendRFC3164 appends r as a BSD syslog message: <PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG.
// The timestamp is UTC (the format has no zone); TAG is the source cut to 32 characters.
func appendRFC3164(buf []byte, r *Record, facility int, now time.Time) []byte {
	buf = append(buf, '<')
	buf = strconv.AppendInt(buf, int64(facility*8+syslogSeverity(r.Fields)), 10)
	buf = append(buf, '>')
	t := r.Time
	if t.IsZero() {
		t = now
	}
	buf = t.UTC().AppendFormat(buf, time.Stamp)
	buf = append(buf, ' ')
	buf = appendPrintASCII(buf, r.Host, 255)
	buf = append(buf, ' ')
	if r.Source == "" {
		buf = append(buf, "logcap"...)
	}
	for i := 0; i < len(r.Source) && i < 32; i++ {
		// Receivers end the tag at ':', '[' or a space.
		c := r.Source[i]
		if c < 33 || c > 126 || c == ':' || c == '[' || c == ']' {
			c = '_'
		}
		buf = append(buf, c)
	}
	buf = append(buf, ": "...)
	return append(buf, syslogMsg(r)...)
}

// appendOctetCounted appends msg framed by octet counting (RFC 6587 3.4.1): "LEN SP MSG".
func appendOctetCounted(buf, msg []byte) []byte {
	buf = strconv.AppendInt(buf, int64(len(msg)), 10)
	buf = append(buf, ' ')
	return append(buf, msg...)
}
