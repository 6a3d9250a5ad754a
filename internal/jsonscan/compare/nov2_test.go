//go:build !goexperiment.jsonv2

package compare

var extra []decoder
