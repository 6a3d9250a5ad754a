// Package compare measures JSON decoders on the json step's input, for the choice made in
// internal/jsonscan. It is a module of its own so that the decoders compared against stay
// out of logcap's go.mod:
//
//	cd internal/jsonscan/compare && go test -bench . -benchmem
//	GOEXPERIMENT=jsonv2 go test -bench . -benchmem   # adds encoding/json/v2
package compare
