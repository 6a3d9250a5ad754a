package config

// Secret is a configuration string that is never printed: Redacted (and so `logcap check`)
// shows it as "****", and %v prints the mask too. Use string(s) where the value is needed.
type Secret string

// MarshalText masks a set secret; an empty one stays empty (a mask would suggest one is set).
func (s Secret) MarshalText() ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return []byte(Mask), nil
}

// UnmarshalText takes the value as written.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}

// String masks a set secret, so that a formatted config or error never shows it.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Mask
}
