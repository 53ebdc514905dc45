package strictjson

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// smallObject is the number of keys an object compares by scanning them
// all; past it, its keys go to a map.
//
// Keys are compared in their unescaped form. A key without escapes is its
// own unescaped form, so it costs nothing to keep: a keyRef to the body.
// Only a key with a backslash is unescaped, into checker.scratch.
//
// All large objects share one map, keyed by an object id and the key.
// Closed objects leave their keys behind, which is cheaper than clearing a
// map per object or allocating one per object. The map's string keys are
// slices of one copy of the body, made the first time the map is needed,
// so that a key without escapes costs no allocation there either.
const smallObject = 16

// keyRef is a key in its unescaped form: c.b[start:end], or
// c.scratch[start:end] if escaped.
type keyRef struct {
	start, end int
	escaped    bool
}

type bigKey struct {
	object int
	key    string
}

// addKey adds to the innermost object f the key held in c.b[start:end]
// (between its quotes), or reports that f already has it.
func (c *checker) addKey(f *frame, start, end int, escaped bool) *Error {
	f.n++
	k := keyRef{start: start, end: end}
	if escaped {
		k = keyRef{start: len(c.scratch), escaped: true}
		c.scratch = appendUnescaped(c.scratch, c.b[start:end])
		k.end = len(c.scratch)
	}
	name := c.keyBytes(k)
	if f.id == 0 {
		for _, old := range c.keys[f.first:] {
			if bytes.Equal(c.keyBytes(old), name) {
				return c.duplicate(start-1, name)
			}
		}
		if f.n <= smallObject {
			c.keys = append(c.keys, k)
			return nil
		}
		c.toBig(f)
	}
	before := len(c.big)
	c.big[bigKey{f.id, c.keyString(k)}] = struct{}{}
	if len(c.big) == before {
		return c.duplicate(start-1, name)
	}
	c.scratch = c.scratch[:f.scratch] // the map holds copies
	return nil
}

// toBig moves the keys of the innermost object f to c.big. They are the
// last ones in c.keys, as f's children are all closed.
func (c *checker) toBig(f *frame) {
	if c.big == nil {
		c.big = make(map[bigKey]struct{})
		c.str = string(c.b)
	}
	c.objects++
	f.id = c.objects
	for _, k := range c.keys[f.first:] {
		c.big[bigKey{f.id, c.keyString(k)}] = struct{}{}
	}
	c.keys = c.keys[:f.first]
}

func (c *checker) keyBytes(k keyRef) []byte {
	if k.escaped {
		return c.scratch[k.start:k.end]
	}
	return c.b[k.start:k.end]
}

func (c *checker) keyString(k keyRef) string {
	if k.escaped {
		return string(c.scratch[k.start:k.end])
	}
	return c.str[k.start:k.end]
}

func (c *checker) duplicate(i int, name []byte) *Error {
	err := c.fail(DuplicateKey, i, "duplicate key "+abbrevQuote(name))
	err.Key = string(name)
	return err
}

// abbrevQuote quotes s, cut to about 64 bytes, for a message.
func abbrevQuote(s []byte) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(string(s))
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(string(s[:n])) + "…"
}

// appendUnescaped appends to dst the contents of a JSON string, s (without
// its quotes), that Check has already found valid.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+j]...)
		i += j
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex(s[i+2 : i+6])
			if utf16.IsSurrogate(r) {
				r = utf16.DecodeRune(r, hex(s[i+8:i+12]))
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 4
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// hex decodes four hexadecimal digits, already checked.
func hex(s []byte) rune {
	var r rune
	for _, c := range s {
		r = r<<4 | unhex(c)
	}
	return r
}
