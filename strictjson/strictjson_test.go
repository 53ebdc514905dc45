package strictjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/boomerang-dev/boomerang/strictjson"
)

type checkCase struct {
	name string
	in   string
	kind strictjson.Kind // 0: valid
	off  int
	path []string
	key  string // DuplicateKey
	msg  string // checked if set

	// notJSON marks a DuplicateKey or LoneSurrogate case whose body also
	// has a syntax error further on.
	notJSON bool
}

const (
	syntax    = strictjson.Syntax
	dup       = strictjson.DuplicateKey
	lone      = strictjson.LoneSurrogate
	tooDeep   = strictjson.TooDeep
	badUTF8   = strictjson.InvalidUTF8
	endOfJSON = "unexpected end of JSON input"
)

func p(path ...string) []string { return path }

var checkCases = []checkCase{
	// Valid bodies.
	{name: "empty object", in: `{}`},
	{name: "empty array", in: `[]`},
	{name: "empty containers spaced", in: " { } "},
	{name: "empty array all whitespace kinds", in: "\t[\n]\r "},
	{name: "zero", in: `0`},
	{name: "negative zero", in: `-0`},
	{name: "huge exponent", in: `1e400`},
	{name: "fraction and exponent", in: `0.5E-10`},
	{name: "signed exponent", in: `-1.5e+3`},
	{name: "big integer", in: `123456789012345678901234567890`},
	{name: "string", in: `"x"`},
	{name: "empty string", in: `""`},
	{name: "true", in: `true`},
	{name: "false", in: `false`},
	{name: "null", in: `null`},
	{name: "scalar in whitespace", in: " \n 42 \t\r\n"},
	{name: "same key in different objects", in: `{"a":1,"b":[1,2,{"a":1}],"c":{"a":2}}`},
	{name: "same key at each level", in: `{"a":{"a":{"a":1}}}`},
	{name: "whitespace everywhere", in: " { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } , \"c\" :\r\n\"d\" } "},
	{name: "keys differ in case", in: `{"a":1,"A":1}`},
	{name: "empty key", in: `{"":1}`},
	{name: "backslash key differs from slash key", in: `{"a\\b":1,"a/b":1}`},
	{name: "all simple escapes", in: `"\"\\\/\b\f\n\r\t"`},
	{name: "escaped NUL", in: `"\u0000"`},
	{name: "raw DEL", in: "\"\x7f\""},
	{name: "U+FFFF escape", in: `"\uFFFF"`},
	{name: "surrogate pair escape", in: `"\ud83d\ude00"`},
	{name: "highest surrogate pair", in: `"\uDBFF\uDFFF"`},
	{name: "raw 4-byte emoji", in: `"😀"`},
	{name: "raw and escaped é", in: `["é","\u00e9","\u00E9"]`},
	{name: "escaped key unlike raw key", in: `{"\u0061b":1,"ac":2}`},
	{name: "raw U+FFFD", in: "\"\uFFFD\""},
	{name: "job submission", in: `{"type":"echo","payload":{"n":1,"tags":["a","b"]},"callbackUrl":"https://example.com/hook","metadata":{"a":"b"}}`},

	// Syntax errors: where, and encoding/json's words.
	{name: "empty body", in: ``, kind: syntax, off: 0, msg: endOfJSON},
	{name: "only whitespace", in: "   ", kind: syntax, off: 3, msg: endOfJSON},
	{name: "unclosed object", in: `{`, kind: syntax, off: 1, msg: endOfJSON},
	{name: "key then end", in: `{"a"`, kind: syntax, off: 4, path: p("a"), msg: endOfJSON},
	{name: "colon then end", in: `{"a":`, kind: syntax, off: 5, path: p("a"), msg: endOfJSON},
	{name: "value then end", in: `{"a":1`, kind: syntax, off: 6, path: p("a"), msg: endOfJSON},
	{name: "trailing comma in object", in: `{"a":1,}`, kind: syntax, off: 7,
		msg: "invalid character '}' looking for beginning of object key string"},
	{name: "trailing comma in array", in: `[1,]`, kind: syntax, off: 3, path: p("1"),
		msg: "invalid character ']' looking for beginning of value"},
	{name: "missing comma in array", in: `[1 2]`, kind: syntax, off: 3, path: p("0"),
		msg: "invalid character '2' after array element"},
	{name: "missing colon", in: `{"a" 1}`, kind: syntax, off: 5, path: p("a"),
		msg: "invalid character '1' after object key"},
	{name: "missing comma in object", in: `{"a":1 "b":2}`, kind: syntax, off: 7, path: p("a"),
		msg: "invalid character '\"' after object key:value pair"},
	{name: "number key", in: `{1:2}`, kind: syntax, off: 1},
	{name: "single-quoted key", in: `{'a':1}`, kind: syntax, off: 1,
		msg: `invalid character '\'' looking for beginning of object key string`},
	{name: "object closed by bracket", in: `{"a":1]`, kind: syntax, off: 6, path: p("a")},
	{name: "array closed by brace", in: `[1}`, kind: syntax, off: 2, path: p("0")},
	{name: "trailing garbage", in: `[1]x`, kind: syntax, off: 3,
		msg: "invalid character 'x' after top-level value"},
	{name: "two values", in: `[1] [2]`, kind: syntax, off: 4},
	{name: "two scalars", in: `1 2`, kind: syntax, off: 2},
	{name: "unterminated string", in: `"abc`, kind: syntax, off: 4, msg: endOfJSON},
	{name: "unterminated key", in: `{"ab`, kind: syntax, off: 4, msg: endOfJSON},
	{name: "unterminated nested string", in: `{"a":["b`, kind: syntax, off: 8, path: p("a", "0")},
	{name: "raw newline in string", in: "\"a\nb\"", kind: syntax, off: 2,
		msg: `invalid character '\n' in string literal`},
	{name: "raw tab in string", in: "\"a\tb\"", kind: syntax, off: 2},
	{name: "raw NUL in string", in: "\"\x00\"", kind: syntax, off: 1},
	{name: "raw control character in key", in: "{\"a\x1f\":1}", kind: syntax, off: 3},
	{name: "unknown escape", in: `"\x"`, kind: syntax, off: 2,
		msg: "invalid character 'x' in string escape code"},
	{name: "short unicode escape", in: `"\u12"`, kind: syntax, off: 5,
		msg: `invalid character '"' in \u hexadecimal character escape`},
	{name: "bad hex digit", in: `"\u12G4"`, kind: syntax, off: 5},
	{name: "escape then end", in: `"\`, kind: syntax, off: 2, msg: endOfJSON},
	{name: "leading zero", in: `01`, kind: syntax, off: 1, msg: "invalid character '1' after top-level value"},
	{name: "leading zero in array", in: `[01]`, kind: syntax, off: 2, path: p("0")},
	{name: "trailing dot", in: `1.`, kind: syntax, off: 2, msg: endOfJSON},
	{name: "trailing dot in array", in: `[1.]`, kind: syntax, off: 3, path: p("0"),
		msg: "invalid character ']' after decimal point in numeric literal"},
	{name: "leading dot", in: `.5`, kind: syntax, off: 0, msg: "invalid character '.' looking for beginning of value"},
	{name: "plus sign", in: `+1`, kind: syntax, off: 0},
	{name: "lone minus", in: `-`, kind: syntax, off: 1, msg: endOfJSON},
	{name: "minus in array", in: `[-]`, kind: syntax, off: 2, path: p("0"),
		msg: "invalid character ']' in numeric literal"},
	{name: "minus letter", in: `-a`, kind: syntax, off: 1},
	{name: "empty exponent", in: `1e`, kind: syntax, off: 2, msg: endOfJSON},
	{name: "empty exponent in array", in: `[1e]`, kind: syntax, off: 3, path: p("0"),
		msg: "invalid character ']' in exponent of numeric literal"},
	{name: "exponent with two signs", in: `[1E+-2]`, kind: syntax, off: 4, path: p("0")},
	{name: "dot then exponent", in: `1.e5`, kind: syntax, off: 2},
	{name: "hex number", in: `0x10`, kind: syntax, off: 1},
	{name: "truncated true", in: `tru`, kind: syntax, off: 3, msg: endOfJSON},
	{name: "misspelt true", in: `trUe`, kind: syntax, off: 2,
		msg: "invalid character 'U' in literal true (expecting 'u')"},
	{name: "misspelt false", in: `fals0`, kind: syntax, off: 4},
	{name: "misspelt null", in: `[nul]`, kind: syntax, off: 4, path: p("0")},
	{name: "capital True", in: `True`, kind: syntax, off: 0},
	{name: "nested path", in: `{"a":[1,{"b":x}]}`, kind: syntax, off: 13, path: p("a", "1", "b")},
	{name: "escaped key in path", in: `{"\u0061\n":{"b":[}}`, kind: syntax, off: 18, path: p("a\n", "b", "0")},
	{name: "array end then end", in: `[1,2`, kind: syntax, off: 4, path: p("1")},
	{name: "non-ASCII outside string", in: `é`, kind: syntax, off: 0,
		msg: "invalid character 'Ã' looking for beginning of value"},
	{name: "raw NUL", in: "\x00", kind: syntax, off: 0},
	{name: "byte order mark", in: "\uFEFF{}", kind: syntax, off: 0},
	{name: "comment", in: `{} // no`, kind: syntax, off: 3},
	{name: "NaN", in: `NaN`, kind: syntax, off: 0},

	// Repeated keys.
	{name: "duplicate key", in: `{"a":1,"a":2}`, kind: dup, off: 7, path: p("a"), key: "a",
		msg: `duplicate key "a"`},
	{name: "duplicate after escaping", in: `{"a":1,"\u0061":2}`, kind: dup, off: 7, path: p("a"), key: "a"},
	{name: "duplicate of escaped key", in: `{"\u0061":1,"a":2}`, kind: dup, off: 12, path: p("a"), key: "a"},
	{name: "duplicate not adjacent", in: `{"a":1,"b":2,"a":3}`, kind: dup, off: 13, path: p("a"), key: "a"},
	{name: "duplicate nested", in: `{"x":{"y":[0,{"k":1,"k":2}]}}`, kind: dup, off: 20, path: p("x", "y", "1", "k"), key: "k"},
	{name: "duplicate escaped slash", in: `{"a\/b":1,"a/b":2}`, kind: dup, off: 10, path: p("a/b"), key: "a/b"},
	{name: "duplicate emoji", in: `{"😀":1,"\ud83d\ude00":2}`, kind: dup, off: 10, path: p("😀"), key: "😀"},
	{name: "duplicate empty key", in: `{"":1,"":2}`, kind: dup, off: 6, path: p(""), key: ""},
	{name: "duplicate after nested value", in: `{"a":{"b":1},"a":[]}`, kind: dup, off: 13, path: p("a"), key: "a"},
	{name: "duplicate before syntax error", in: `{"a":1,"a":x}`, kind: dup, off: 7, path: p("a"), key: "a", notJSON: true},

	// Lone surrogates.
	{name: "lone high surrogate", in: `"\ud800"`, kind: lone, off: 1, msg: `lone UTF-16 surrogate \ud800`},
	{name: "lone low surrogate", in: `"\udc00"`, kind: lone, off: 1},
	{name: "lone low surrogate upper case", in: `"\uDFFF"`, kind: lone, off: 1, msg: `lone UTF-16 surrogate \uDFFF`},
	{name: "high then not low", in: `"\ud800\u0041"`, kind: lone, off: 1},
	{name: "high then high", in: `"\ud800\ud800"`, kind: lone, off: 1},
	{name: "high then character", in: `"\ud800x"`, kind: lone, off: 1},
	{name: "high then other escape", in: `"\ud800\n"`, kind: lone, off: 1},
	{name: "high then escaped quote", in: `"\ud800\""`, kind: lone, off: 1},
	{name: "lone surrogate before syntax error", in: `["\ud800",]`, kind: lone, off: 2, path: p("0"), notJSON: true},
	{name: "high after text", in: `"ab\ud800"`, kind: lone, off: 3},
	{name: "low after pair", in: `"\ud83d\ude00\udc00"`, kind: lone, off: 13},
	{name: "lone surrogate nested", in: `{"a":["ok","\ud800"]}`, kind: lone, off: 12, path: p("a", "1")},
	{name: "lone surrogate in key", in: `{"\ud800":1}`, kind: lone, off: 2},
	{name: "lone surrogate in second key", in: `{"a":1,"b\udfff":1}`, kind: lone, off: 9},
	{name: "high then bad hex", in: `"\ud800\u00zz"`, kind: syntax, off: 11},
	{name: "high then end", in: `"\ud800`, kind: syntax, off: 7, msg: endOfJSON},
	{name: "high then backslash end", in: `"\ud800\`, kind: syntax, off: 8, msg: endOfJSON},

	// Invalid UTF-8.
	{name: "invalid byte in string", in: "\"\xff\"", kind: badUTF8, off: 1, msg: "invalid UTF-8 byte 0xff"},
	{name: "truncated sequence", in: "\"\xc3\"", kind: badUTF8, off: 1},
	{name: "truncated sequence at end", in: "\"\xe2\x82", kind: badUTF8, off: 1},
	{name: "UTF-8 encoded surrogate", in: "\"\xed\xa0\x80\"", kind: badUTF8, off: 1},
	{name: "overlong slash", in: "\"\xc0\xaf\"", kind: badUTF8, off: 1},
	{name: "after valid text", in: "[\"é\",\"a\x80\"]", kind: badUTF8, off: 8, path: p("1")},
	{name: "invalid byte in key", in: "{\"\xff\":1}", kind: badUTF8, off: 2},
	{name: "invalid byte after value", in: "{\"a\":1}\xff", kind: badUTF8, off: 7},
	{name: "invalid byte alone", in: "\xff", kind: badUTF8, off: 0},
	{name: "invalid byte in escape", in: "\"\\u12\xff\"", kind: badUTF8, off: 5},
}

// deepCases nest arrays and objects exactly MaxDepth deep, and one deeper.
func deepCases() []checkCase {
	const d = strictjson.MaxDepth
	zeros := slices.Repeat([]string{"0"}, d)
	as := slices.Repeat([]string{"a"}, d)
	return []checkCase{
		{name: "arrays at max depth", in: strings.Repeat("[", d) + strings.Repeat("]", d)},
		{name: "arrays too deep", in: strings.Repeat("[", d+1) + strings.Repeat("]", d+1),
			kind: tooDeep, off: d, path: zeros},
		{name: "arrays too deep unclosed", in: strings.Repeat("[", 3*d), kind: tooDeep, off: d, path: zeros},
		{name: "objects at max depth", in: strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d)},
		{name: "objects too deep", in: strings.Repeat(`{"a":`, d+1) + "1" + strings.Repeat("}", d+1),
			kind: tooDeep, off: 5 * d, path: as},
		{name: "mixed one too deep", in: strings.Repeat(`[{"a":`, d/2) + "[]" + strings.Repeat("}]", d/2),
			kind: tooDeep, off: 6 * d / 2, path: slices.Repeat([]string{"0", "a"}, d/2)},
		{name: "mixed just below max depth", in: strings.Repeat(`[{"a":`, d/2) + "1" + strings.Repeat("}]", d/2)},
	}
}

// bigObjectCases exercise objects with more keys than Check compares by
// scanning (6), whose keys go to a hash table (of 16 slots, then more).
func bigObjectCases() []checkCase {
	keys := func(n int, format string) string {
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, format, i)
		}
		return sb.String()
	}
	k40 := keys(40, `"k%d":0`)
	k20 := keys(20, `"k%d":0`)
	n40 := len("{" + k40 + ",")
	return []checkCase{
		{name: "6 keys then repeat last", in: "{" + keys(6, `"k%d":0`) + `,"k5":1}`, kind: dup,
			off: len("{" + keys(6, `"k%d":0`) + ","), path: p("k5"), key: "k5"},
		{name: "7 keys then repeat first", in: "{" + keys(7, `"k%d":0`) + `,"k0":1}`, kind: dup,
			off: len("{" + keys(7, `"k%d":0`) + ","), path: p("k0"), key: "k0"},
		{name: "7 escaped keys then repeat", in: "{" + keys(7, `"\u006b%d":0`) + `,"k6":1}`, kind: dup,
			off: len("{" + keys(7, `"\u006b%d":0`) + ","), path: p("k6"), key: "k6"},
		{name: "13 keys then repeat", in: "{" + keys(13, `"k%d":0`) + `,"k12":1}`, kind: dup,
			off: len("{" + keys(13, `"k%d":0`) + ","), path: p("k12"), key: "k12"},
		{name: "7 keys", in: "{" + keys(7, `"k%d":0`) + "}"},
		{name: "13 keys", in: "{" + keys(13, `"k%d":0`) + "}"},
		{name: "17 keys", in: "{" + keys(17, `"k%d":0`) + "}"},
		{name: "40 keys", in: "{" + k40 + "}"},
		{name: "16 keys then repeat", in: "{" + keys(16, `"k%d":0`) + `,"k0":1}`, kind: dup,
			off: len("{" + keys(16, `"k%d":0`) + ","), path: p("k0"), key: "k0"},
		{name: "17 keys then repeat first", in: "{" + keys(17, `"k%d":0`) + `,"k0":1}`, kind: dup,
			off: len("{" + keys(17, `"k%d":0`) + ","), path: p("k0"), key: "k0"},
		{name: "40 keys then repeat last", in: "{" + k40 + `,"k39":1}`, kind: dup, off: n40, path: p("k39"), key: "k39"},
		{name: "40 keys then repeat escaped", in: "{" + k40 + `,"\u006b7":1}`, kind: dup, off: n40, path: p("k7"), key: "k7"},
		{name: "40 escaped keys then repeat raw", in: "{" + keys(40, `"\u006b%d":0`) + `,"k7":1}`, kind: dup,
			off: len("{" + keys(40, `"\u006b%d":0`) + ","), path: p("k7"), key: "k7"},
		{name: "40 escaped keys then repeat escaped", in: "{" + keys(40, `"\u006b%d":0`) + `,"\u006b7":1}`, kind: dup,
			off: len("{" + keys(40, `"\u006b%d":0`) + ","), path: p("k7"), key: "k7"},
		{name: "sibling big objects share keys", in: "[{" + k40 + "},{" + k40 + "},{" + k20 + "}]"},
		{name: "big object in big object", in: "{" + k20 + `,"in":{` + k40 + "}," + keys(20, `"j%d":0`) + "}"},
		{name: "big object in big object then repeat", in: "{" + k20 + `,"in":{` + k40 + `},"k19":1}`, kind: dup,
			off: len("{" + k20 + `,"in":{` + k40 + "},"), path: p("k19"), key: "k19"},
		{name: "repeat inside inner big object", in: "{" + k20 + `,"in":[{` + k40 + `,"k3":1}]}`, kind: dup,
			off: len("{" + k20 + `,"in":[{` + k40 + ","), path: p("in", "0", "k3"), key: "k3"},
		{name: "small object in big object keeps its own keys", in: "{" + k20 + `,"in":{"k1":1,"k2":2},"x":{"k1":1}}`},
	}
}

func allCases() []checkCase {
	return slices.Concat(checkCases, deepCases(), bigObjectCases())
}

func TestCheck(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := abbrev(tc.in)
			err := strictjson.Check([]byte(tc.in))
			if tc.kind == 0 {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", in, err)
				}
				return
			}
			var e *strictjson.Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%s) = %v, want a *strictjson.Error of kind %v", in, err, tc.kind)
			}
			if e.Kind != tc.kind || e.Offset != tc.off || e.Key != tc.key {
				t.Errorf("Check(%s) = %v kind %v offset %d key %q; want kind %v offset %d key %q",
					in, e, e.Kind, e.Offset, e.Key, tc.kind, tc.off, tc.key)
			}
			if !slices.Equal(e.Path, tc.path) {
				t.Errorf("Check(%s) path = %s, want %s", in, abbrevPath(e.Path), abbrevPath(tc.path))
			}
			if tc.msg != "" && e.Msg != tc.msg {
				t.Errorf("Check(%s) msg = %q, want %q", in, e.Msg, tc.msg)
			}
		})
	}
}

// TestCheckAgreesWithEncodingJSON holds every case against json.Valid, and
// every syntax error against encoding/json's own message and offset.
func TestCheckAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range allCases() {
		in := []byte(tc.in)
		valid := json.Valid(in)
		switch tc.kind {
		case 0, dup, lone:
			if !valid && !tc.notJSON {
				t.Errorf("json.Valid(%s) = false, want true (case %q)", abbrev(tc.in), tc.name)
			}
		case syntax, tooDeep:
			if valid {
				t.Errorf("json.Valid(%s) = true, want false (case %q)", abbrev(tc.in), tc.name)
			}
		}
		if tc.kind == syntax || tc.kind == tooDeep {
			if msg := compareSyntaxError(in, strictjson.Check(in)); msg != "" {
				t.Errorf("case %q: %s", tc.name, msg)
			}
		}
	}
}

// compareSyntaxError compares a Syntax or TooDeep error from Check with
// encoding/json's, and returns what differs.
func compareSyntaxError(in []byte, err error) string {
	var e *strictjson.Error
	if !errors.As(err, &e) {
		return fmt.Sprintf("Check(%s) = %v, want a *strictjson.Error", abbrev(string(in)), err)
	}
	var syn *json.SyntaxError
	if !errors.As(json.Unmarshal(in, new(json.RawMessage)), &syn) {
		return fmt.Sprintf("json.Unmarshal(%s) gave no *json.SyntaxError, Check gave %v", abbrev(string(in)), e)
	}
	if jsonV2 {
		return "" // its messages and offsets differ from v1's
	}
	// encoding/json's offset counts the offending byte; at the end of the
	// body it says what it would have made of one more space.
	wantOff, wantMsg := int(syn.Offset)-1, syn.Error()
	if e.Offset == len(in) {
		wantOff, wantMsg = int(syn.Offset), e.Msg
	}
	if e.Kind == tooDeep {
		wantMsg = e.Msg
		if !strings.HasSuffix(syn.Error(), "exceeded max depth") {
			return fmt.Sprintf("Check(%s) = %v, but encoding/json says %q", abbrev(string(in)), e, syn)
		}
	}
	if e.Offset != wantOff || e.Msg != wantMsg {
		return fmt.Sprintf("Check(%s) = %q at offset %d; encoding/json says %q at offset %d",
			abbrev(string(in)), e.Msg, e.Offset, wantMsg, wantOff)
	}
	return ""
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		in, want, top string
	}{
		{`{"a":1,"a":2}`, `strictjson: duplicate key "a" at /a (offset 7)`, "a"},
		{`{"a/b":{"c~d":[1,"\ud800"]}}`, `strictjson: lone UTF-16 surrogate \ud800 at /a~1b/c~0d/1 (offset 18)`, "a/b"},
		{`[1,2`, `strictjson: unexpected end of JSON input at /1 (offset 4)`, "1"},
		{`1 2`, `strictjson: invalid character '2' after top-level value (offset 2)`, ""},
		{`{"` + strings.Repeat("é", 40) + `":1,"` + strings.Repeat("é", 40) + `":2}`,
			`strictjson: duplicate key "` + strings.Repeat("é", 32) + `"… at /` + strings.Repeat("é", 40) + ` (offset 86)`,
			strings.Repeat("é", 40)},
	} {
		var e *strictjson.Error
		if !errors.As(strictjson.Check([]byte(tc.in)), &e) {
			t.Errorf("Check(%s) = nil, want an error", tc.in)
			continue
		}
		if got := e.Error(); got != tc.want {
			t.Errorf("Check(%s).Error() = %q, want %q", tc.in, got, tc.want)
		}
		if got := e.TopField(); got != tc.top {
			t.Errorf("Check(%s).TopField() = %q, want %q", tc.in, got, tc.top)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[strictjson.Kind]string{
		0: "Kind(0)", syntax: "syntax", dup: "duplicate key", lone: "lone surrogate",
		tooDeep: "too deep", badUTF8: "invalid UTF-8", 6: "Kind(6)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// abbrev shortens a body for a failure message.
func abbrev(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q…(%d bytes)", s[:60], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func abbrevPath(p []string) string {
	if len(p) > 8 {
		return fmt.Sprintf("%q…(%d elements)", p[:8], len(p))
	}
	return fmt.Sprintf("%q", p)
}
