//go:build goexperiment.jsonv2

package compare

import (
	jsonv2 "encoding/json/v2"
)

var extra = []decoder{{"encoding_json_v2", func(s string) (map[string]any, error) {
	var m map[string]any
	err := jsonv2.Unmarshal([]byte(s), &m)
	return m, err
}}}
