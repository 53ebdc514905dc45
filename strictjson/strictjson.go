// Package strictjson checks JSON request bodies before anything decodes
// them, and refuses the ones that parsers disagree on or that cost too much
// to hold: repeated keys, lone UTF-16 surrogate escapes, invalid UTF-8 and
// nesting deeper than [MaxDepth].
//
// An HTTP handler reads the body (bounded in size), calls [Check] on the
// bytes, maps a non-nil [*Error] to a problem response by its [Kind] (naming
// the request field at fault with [Error.TopField]), and only then hands the
// bytes to encoding/json.
//
// Check makes one pass over the bytes with an explicit stack, so its cost is
// linear in the size of the body whatever its shape: a 1 MiB body with a
// hundred thousand keys, or ten thousand levels of nesting, is checked in a
// few milliseconds. It accepts exactly what [encoding/json.Valid] accepts,
// less what the extra rules refuse, and reports syntax errors with the same
// messages as encoding/json.
//
// The standard library is the only dependency.
package strictjson

import (
	"math/bits"
	"strconv"
	"strings"
	"sync"
)

// MaxDepth is the deepest nesting of objects and arrays that [Check]
// accepts, the same limit as encoding/json's.
const MaxDepth = 10000

// Kind says which rule a body breaks. The zero Kind is none of them.
type Kind int

const (
	Syntax        Kind = iota + 1 // not JSON text (RFC 8259), or truncated
	DuplicateKey                  // an object repeats a key
	LoneSurrogate                 // a \u escape holds half of a UTF-16 surrogate pair
	TooDeep                       // objects and arrays nest deeper than MaxDepth
	InvalidUTF8                   // the bytes are not UTF-8 (even where the grammar allows no such byte)
)

var kindNames = [...]string{
	Syntax:        "syntax",
	DuplicateKey:  "duplicate key",
	LoneSurrogate: "lone surrogate",
	TooDeep:       "too deep",
	InvalidUTF8:   "invalid UTF-8",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error describes the first problem in a body, scanning from its start.
type Error struct {
	Kind Kind

	// Offset is the byte offset of the problem: the offending byte (the
	// first of invalid UTF-8), the opening quote of a repeated key, the
	// backslash of a lone surrogate escape, the bracket one level too deep,
	// or len(body) when the body ends too early.
	Offset int

	// Path holds the object keys (unescaped) and array indexes (decimal)
	// from the root to the problem, e.g. ["payload", "items", "2", "name"];
	// it is nil for a problem at the top level. An object's key joins the
	// path once its closing quote is read, so for a DuplicateKey the path
	// ends with the repeated key, and a problem inside a key string has the
	// path of its object.
	Path []string

	// Key is the repeated key (unescaped) of a DuplicateKey.
	Key string

	// Msg says what is wrong, e.g. "invalid character '}' after object key"
	// or `lone UTF-16 surrogate \ud800`. Syntax messages are those of
	// encoding/json, except that a body that ends too early is always
	// "unexpected end of JSON input".
	Msg string
}

func (e *Error) Error() string {
	s := "strictjson: " + e.Msg
	if len(e.Path) > 0 {
		s += " at " + pointer(e.Path)
	}
	return s + " (offset " + strconv.Itoa(e.Offset) + ")"
}

// TopField returns the first element of the path, which names the request
// field at fault, or "" for a problem at the top level.
func (e *Error) TopField() string {
	if len(e.Path) == 0 {
		return ""
	}
	return e.Path[0]
}

// Check reports whether b is exactly one JSON value (RFC 8259, with
// whitespace allowed around it) that also keeps these rules:
//   - no object repeats a key, comparing keys after unescaping, so "a" and
//     "\u0061" are the same key;
//   - no string holds a lone UTF-16 surrogate escape: "\ud800" or "\udc00"
//     alone, or a high surrogate not followed by a low one ("\ud800\u0041");
//     a pair such as "\ud83d\ude00" is fine;
//   - objects and arrays nest at most MaxDepth deep;
//   - the bytes are valid UTF-8.
//
// It returns nil, or an [*Error] describing the first problem met, reading
// from the start: a syntax error before the first invalid UTF-8 byte is a
// Syntax error. (To put invalid UTF-8 first wherever it is, call
// utf8.Valid before Check.)
func Check(b []byte) error {
	c := checkers.Get().(*checker)
	c.reset(b)
	err := c.run()
	c.b = nil // the pool keeps no caller's bytes
	checkers.Put(c)
	if err != nil {
		return err
	}
	return nil
}

// checkers keeps checkers for reuse: one is a few KiB, which a server
// checking every request body would otherwise allocate and clear each time.
var checkers = sync.Pool{New: func() any { return new(checker) }}

// maxKept bounds the buffers a pooled checker keeps, in elements: a huge
// body's buffers are let go rather than held by the pool.
const maxKept = 4096

// reset readies c to check b, keeping its buffers unless they grew large.
func (c *checker) reset(b []byte) {
	c.b, c.offsetBits = b, uint(bits.Len(uint(len(b))))
	c.stack, c.keys, c.tables = keep(c.stack, c.stackBuf[:0]), keep(c.keys, c.keysBuf[:0]), keep(c.tables, c.tablesBuf[:0])
	c.scratch, c.aside, c.reread = keep(c.scratch, nil), keep(c.aside, nil), keep(c.reread, nil)
}

// keep empties s for reuse, or returns inline (a checker's own array, or
// nil) in place of a buffer larger than maxKept or not yet allocated.
func keep[T any](s, inline []T) []T {
	if cap(s) == 0 || cap(s) > maxKept || cap(s) <= cap(inline) {
		return inline
	}
	return s[:0]
}

// pointer formats a path as a JSON Pointer (RFC 6901), e.g. /payload/items/2.
func pointer(path []string) string {
	var sb strings.Builder
	r := strings.NewReplacer("~", "~0", "/", "~1")
	for _, p := range path {
		sb.WriteByte('/')
		sb.WriteString(r.Replace(p))
	}
	return sb.String()
}
