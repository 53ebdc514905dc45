package strictjson

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestFewHashBits checks objects of many keys with tables that keep only
// 4 bits of hash per key (as if the body were huge), so that most lookups
// match by chance and must compare keys read back from the body, and
// probes start in a few slots only. The results must not change.
func TestFewHashBits(t *testing.T) {
	keys := func(n int, format string) string {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, format, i)
		}
		return sb.String()
	}
	for _, tc := range []struct{ body, repeated string }{
		{`{` + keys(500, `"k%d":0,`) + `"end":0}`, ""},
		{`{` + keys(500, `"k%d":0,`) + `"k499":0}`, "k499"},
		{`{` + keys(500, `"k%d":0,`) + `"\u006b250":0}`, "k250"},
		{`{` + keys(500, `"\u006b%d":0,`) + `"k250":0}`, "k250"},
		{`{` + keys(500, `"\"%d\\\"":0,`) + `"\"250\\\"":0}`, `"250\"`},
		{`[` + strings.Repeat(`{`+keys(40, `"k%d":0,`)+`"end":0},`, 50) + `0]`, ""},
		{`{` + keys(100, `"a%d":0,`) + `"in":{` + keys(100, `"a%d":0,`) + `"a99":0},` + keys(10, `"b%d":0,`) + `"z":0}`, "a99"},
		{`{` + keys(100, `"a%d":0,`) + `"in":{` + keys(100, `"a%d":0,`) + `"z":0},` + keys(10, `"b%d":0,`) + `"a7":0}`, "a7"},
	} {
		b := []byte(tc.body)
		c := &checker{b: b, offsetBits: 60}
		err := c.run()
		switch {
		case tc.repeated == "" && err != nil:
			t.Errorf("with 4 hash bits, Check(%.60q…) = %v, want nil", tc.body, err)
		case tc.repeated != "" && (err == nil || err.Kind != DuplicateKey || err.Key != tc.repeated):
			t.Errorf("with 4 hash bits, Check(%.60q…) = %v, want key %q repeated", tc.body, err, tc.repeated)
		case err != nil && !reflect.DeepEqual(err, Check(b)):
			t.Errorf("with 4 hash bits, Check(%.60q…) = %v, want %v as with all bits", tc.body, err, Check(b))
		}
	}
}
