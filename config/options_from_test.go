package config

import "testing"

func TestOptionsFromKeepsStrings(t *testing.T) {
	o, err := OptionsFrom(map[string]any{"label": "{{.Source}}", "n": 3, "list": []string{"a: b", "*"}})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Label string   `yaml:"label"`
		N     int      `yaml:"n"`
		List  []string `yaml:"list"`
	}
	if err := o.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.Label != "{{.Source}}" || v.N != 3 || len(v.List) != 2 || v.List[0] != "a: b" || v.List[1] != "*" {
		t.Fatalf("got %+v", v)
	}
}
