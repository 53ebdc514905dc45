package strictjson

import (
	"bytes"
	"hash/maphash"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// How an object finds a repeated key
//
// Keys are compared in their unescaped form. A key without escapes is its
// own unescaped form, so it costs nothing to keep: an offset in the body.
// Only a key with a backslash is unescaped.
//
// An object with at most smallObject keys compares each new key with all
// the others: checker.keys holds the keys of such open objects, innermost
// object last, and checker.scratch the unescaped forms of their escaped keys.
//
// A larger object indexes its keys in a hash table instead. A slot holds
// the offset of the key's opening quote (plus one; 0 is an empty slot) in
// its low offsetBits bits, and the upper bits of the key's hash above
// them, so that a key is read back from the body only when those bits
// match: for a repeated key, or about once in 2^32 lookups by chance
// (bodies under 4 GiB keep at least 32 bits of hash). A table has a power
// of two slots, at most three quarters of them used, and probes linearly
// from the slot that the hash bits kept give, so that it grows without
// reading keys again.
//
// The tables of the open large objects lie one after the other in
// checker.tables, innermost last. A table grows in place, and a closed
// object's table is dropped from the end, so that checker.tables is
// allocated only when it must grow, and a table costs a few times its
// number of keys to clear.
const (
	smallObject    = 6
	firstTableSize = 16
)

// seed makes the hash of keys differ from process to process, so that no
// body can be made to collide.
var seed = maphash.MakeSeed()

// keyRef is a key of a small object: its opening quote is at c.b[quote],
// and its unescaped form is c.b[start:end], or c.scratch[start:end] if
// escaped.
type keyRef struct {
	quote, start, end int
	escaped           bool
}

// addKey adds to the innermost object f the key whose quotes are at quote
// and end-1, or reports that f already has it.
func (c *checker) addKey(f *frame, quote, end int, escaped bool) *Error {
	k := keyRef{quote: quote, start: quote + 1, end: end - 1}
	if escaped {
		k = keyRef{quote: quote, start: len(c.scratch), escaped: true}
		c.scratch = appendUnescaped(c.scratch, c.b[quote+1:end-1])
		k.end = len(c.scratch)
	}
	name := c.keyBytes(k)
	f.n++
	if f.n <= smallObject {
		for _, old := range c.keys[f.first:] {
			if bytes.Equal(c.keyBytes(old), name) {
				return c.duplicate(quote, name)
			}
		}
		c.keys = append(c.keys, k)
		return nil
	}
	if f.n == smallObject+1 {
		// Move the keys so far to a table: they are the last ones in
		// c.keys and c.scratch, as f's children are all closed.
		f.indexed, f.table = true, len(c.tables)
		c.claim(firstTableSize)
		for _, old := range c.keys[f.first:] {
			c.index(f, old.quote, c.keyBytes(old))
		}
		c.keys = c.keys[:f.first]
	} else if 4*f.n > 3*(len(c.tables)-f.table) {
		c.grow(f)
	}
	if !c.index(f, quote, name) {
		return c.duplicate(quote, name)
	}
	c.scratch = c.scratch[:f.scratch]
	return nil
}

// index adds the key name, whose opening quote is at quote, to the table
// of f, unless the table has it; it reports whether it added it.
func (c *checker) index(f *frame, quote int, name []byte) bool {
	t := c.tables[f.table:]
	h := maphash.Bytes(seed, name) >> c.offsetBits
	mask := uint64(len(t) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		switch s := t[p]; {
		case s == 0:
			t[p] = h<<c.offsetBits | uint64(quote+1)
			return true
		case s>>c.offsetBits == h && bytes.Equal(c.keyAt(int(s&(1<<c.offsetBits-1))-1), name):
			return false
		}
	}
}

// grow doubles the table of f, the last in c.tables, in place: it copies
// the slots aside, and puts them back into the larger table.
func (c *checker) grow(f *frame) {
	n := len(c.tables) - f.table
	c.aside = append(c.aside[:0], c.tables[f.table:]...)
	c.claim(n)
	t := c.tables[f.table:]
	clear(t[:n])
	mask := uint64(len(t) - 1)
	for _, s := range c.aside {
		if s == 0 {
			continue
		}
		p := s >> c.offsetBits & mask
		for t[p] != 0 {
			p = (p + 1) & mask
		}
		t[p] = s
	}
}

// claim adds n empty slots at the end of c.tables, which at least doubles
// when it must grow.
func (c *checker) claim(n int) {
	l := len(c.tables)
	c.tables = slices.Grow(c.tables, max(n, l))[:l+n]
	clear(c.tables[l:])
}

func (c *checker) keyBytes(k keyRef) []byte {
	if k.escaped {
		return c.scratch[k.start:k.end]
	}
	return c.b[k.start:k.end]
}

// keyAt returns the unescaped form of the key whose opening quote is at
// quote; it unescapes into c.reread, which it overwrites.
func (c *checker) keyAt(quote int) []byte {
	s := c.b[quote+1:]
	escaped := false
	n := 0
	for s[n] != '"' {
		if s[n] == '\\' {
			escaped = true
			n++
		}
		n++
	}
	if !escaped {
		return s[:n]
	}
	c.reread = appendUnescaped(c.reread[:0], s[:n])
	return c.reread
}

func (c *checker) duplicate(quote int, name []byte) *Error {
	err := c.fail(DuplicateKey, quote, "duplicate key "+abbrevQuote(name))
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
