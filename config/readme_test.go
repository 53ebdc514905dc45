package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/config"
)

// TestReadmeTableIsVars: the README's configuration table and config.Vars
// (which `boomerang serve --help` prints) are one table: the same variables
// in the same order, with the same defaults and meanings (the README adds
// only `code` marks).
func TestReadmeTableIsVars(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(BOOMERANG_[A-Z0-9_]+)` \\|(.*?)\\|(.*)\\|$")
	var got []config.Var
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		plain := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "`", "") }
		got = append(got, config.Var{Name: m[1], Default: plain(m[2]), Help: plain(m[3])})
	}
	for i := 0; i < max(len(got), len(config.Vars)); i++ {
		switch {
		case i >= len(got):
			t.Errorf("README row %d: none; config.Vars has %s", i+1, config.Vars[i].Name)
		case i >= len(config.Vars):
			t.Errorf("README row %d: %s, which config.Vars lacks", i+1, got[i].Name)
		case got[i] != config.Vars[i]:
			t.Errorf("README row %d (without `marks`):\n got %+v\nwant %+v (config.Vars)", i+1, got[i], config.Vars[i])
		}
	}
}
