package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/strictjson"
)

// FuzzCheck holds Check against encoding/json and against refCheck:
//   - what Check accepts, json.Valid accepts;
//   - what json.Valid accepts, Check accepts too unless the body is not
//     UTF-8, repeats a key (found with the old Decoder.Token loop) or holds
//     a lone surrogate (found by a simple scan), and a repeated key or lone
//     surrogate that Check reports in such a body is there;
//   - Check's error is refCheck's, and a syntax error is encoding/json's.
func FuzzCheck(f *testing.F) {
	for _, tc := range checkCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := strictjson.Check(b)
		var e *strictjson.Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Check(%q) = %T %v, want a *strictjson.Error", b, err, err)
		}
		valid := json.Valid(b)
		if err == nil && !valid {
			t.Fatalf("Check(%q) = nil, but json.Valid = false", b)
		}
		if valid && utf8.Valid(b) {
			lone, dup := hasLoneSurrogate(b), false
			if !lone {
				dup = hasDuplicateKey(b)
			}
			switch {
			case !lone && !dup && err != nil:
				t.Fatalf("Check(%q) = %v; want nil: json.Valid accepts it, and it is UTF-8 with neither repeated keys nor lone surrogates", b, err)
			case e != nil && e.Kind == strictjson.LoneSurrogate && !lone:
				t.Fatalf("Check(%q) = %v, but a simple scan finds no lone surrogate", b, err)
			case e != nil && e.Kind == strictjson.DuplicateKey && !lone && !dup:
				t.Fatalf("Check(%q) = %v, but the Decoder.Token loop finds no repeated key", b, err)
			case e != nil && e.Kind != strictjson.LoneSurrogate && e.Kind != strictjson.DuplicateKey:
				t.Fatalf("Check(%q) = %v for a body json.Valid accepts", b, err)
			}
		}
		ref := refCheck(b)
		if ref == nil && err == nil {
			return
		}
		if ref == nil || e == nil {
			t.Fatalf("Check(%q) = %v, refCheck = %v; want both nil or both errors", b, err, ref)
		}
		if e.Kind != ref.Kind || e.Offset != ref.Offset || e.Key != ref.Key || !slices.Equal(e.Path, ref.Path) ||
			(e.Msg != ref.Msg && (e.Kind != strictjson.DuplicateKey || len(e.Key) <= 64)) {
			t.Fatalf("Check(%q) = %+v\nwant (refCheck) %+v", b, e, ref)
		}
		switch e.Kind {
		case strictjson.Syntax, strictjson.TooDeep:
			if msg := compareSyntaxError(b, e); msg != "" {
				t.Fatal(msg)
			}
		case strictjson.InvalidUTF8:
			if !utf8.Valid(b[:e.Offset]) || utf8.Valid(b) {
				t.Fatalf("Check(%q) = %v, but the first invalid UTF-8 is elsewhere", b, e)
			}
		}
	})
}

// hasDuplicateKey finds repeated keys the way the API did before Check,
// with encoding/json's Decoder.Token. It is only meaningful for a body that
// json.Valid accepts, without lone surrogates (which it decodes to U+FFFD).
func hasDuplicateKey(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := false
		switch t := tok.(type) {
		case json.Delim:
			if t == '}' || t == ']' {
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.object && top.key {
				if top.keys[t] {
					return true
				}
				top.keys[t] = true
				isKey = true
			}
		}
		if top != nil && top.object {
			top.key = !isKey
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &frame{keys: map[string]bool{}, object: d == '{', key: true})
		}
	}
}

// hasLoneSurrogate scans a body that json.Valid accepts for a \u escape
// of a low surrogate not just after a high one, or of a high surrogate not
// just before a low one.
func hasLoneSurrogate(b []byte) bool {
	inString, high := false, false // high: the previous escape was a high surrogate
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '\\' && b[i+1] == 'u':
			r, _ := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
			isLow := 0xdc00 <= r && r <= 0xdfff
			if high != isLow {
				return true
			}
			high = 0xd800 <= r && r <= 0xdbff
			i += 5
		case high:
			return true
		case c == '\\':
			i++
		case c == '"':
			inString = false
		}
	}
	return high
}
