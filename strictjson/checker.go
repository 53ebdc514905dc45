package strictjson

import (
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// checker holds the state of one Check: the stack of open objects and
// arrays, and the keys each open object has seen (see keys.go).
type checker struct {
	b     []byte
	stack []frame

	keys       []keyRef // keys of the open small objects
	scratch    []byte   // unescaped forms of their escaped keys
	tables     []uint64 // hash tables of the open large objects
	aside      []uint64 // a table's slots while it grows
	offsetBits uint     // bits of a table slot that hold a key's offset
	reread     []byte   // a key read back from the body, unescaped

	// Most bodies need no more than these.
	stackBuf  [16]frame
	keysBuf   [32]keyRef
	tablesBuf [2 * firstTableSize]uint64
}

// frame is an open object or array. It keeps only offsets, so that
// nothing is allocated per token; the path is rebuilt from them when
// there is an error to report.
type frame struct {
	// n is the index of an array's current element, or the number of an
	// object's keys.
	n int

	// key is the offset of the opening quote of an object's current key,
	// or -1 before the first key and after a comma.
	key int

	// first and scratch are where a small object's keys start in
	// checker.keys and checker.scratch.
	first, scratch int

	object bool

	// indexed says that an object has more than smallObject keys, and so
	// a hash table: checker.tables[table:] while the object is innermost.
	indexed bool
	table   int
}

// run checks c.b. Its loop reads one value, or the opening of an object
// or array, per turn, then closes the containers that end after it.
func (c *checker) run() *Error {
	b := c.b
	var err *Error
	i := 0
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return c.unexpected(i, "")
		}
		switch ch := b[i]; {
		case ch == '{' || ch == '[':
			var empty bool
			if i, empty, err = c.open(i); err == nil && !empty {
				continue // a value follows
			}
		case ch == '"':
			i, _, err = c.string(i)
		case ch == '-' || '0' <= ch && ch <= '9':
			i, err = c.number(i)
		case ch == 't':
			i, err = c.literal(i, "true")
		case ch == 'f':
			i, err = c.literal(i, "false")
		case ch == 'n':
			i, err = c.literal(i, "null")
		default:
			return c.unexpected(i, "looking for beginning of value")
		}
		if err != nil {
			return err
		}
		if i, err = c.afterValue(i); err != nil || i < 0 {
			return err
		}
	}
}

// afterValue reads from i, just after a value, up to the start of the next
// value (after a comma or an object key), closing the objects and arrays
// that end on the way. It returns -1 at the end of the body.
func (c *checker) afterValue(i int) (int, *Error) {
	b := c.b
	for {
		i = skipSpace(b, i)
		if len(c.stack) == 0 {
			if i < len(b) {
				return i, c.unexpected(i, "after top-level value")
			}
			return -1, nil
		}
		if i >= len(b) {
			return i, c.unexpected(i, "")
		}
		f := &c.stack[len(c.stack)-1]
		switch {
		case b[i] == ',' && f.object:
			f.key = -1
			return c.key(skipSpace(b, i+1))
		case b[i] == ',':
			f.n++
			return i + 1, nil
		case b[i] == '}' && f.object, b[i] == ']' && !f.object:
			c.pop()
		case f.object:
			return i, c.unexpected(i, "after object key:value pair")
		default:
			return i, c.unexpected(i, "after array element")
		}
		i++
	}
}

// open reads the opening of an object or array at i, and an object's
// first key. It reports whether the object or array is empty, and so
// already closed.
func (c *checker) open(i int) (next int, empty bool, err *Error) {
	b := c.b
	if len(c.stack) == MaxDepth {
		return i, false, c.fail(TooDeep, i, "exceeded max depth of "+strconv.Itoa(MaxDepth))
	}
	object, end := b[i] == '{', byte(']')
	if object {
		end = '}'
		c.push(frame{object: true, key: -1, first: len(c.keys), scratch: len(c.scratch)})
	} else {
		c.push(frame{})
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == end {
		c.pop()
		return i + 1, true, nil
	}
	if object {
		i, err = c.key(i)
	}
	return i, false, err
}

// push opens an object or array. The stack doubles as it grows, rather
// than by append's smaller steps, as it may grow to MaxDepth frames.
func (c *checker) push(f frame) {
	if len(c.stack) == cap(c.stack) {
		c.stack = slices.Grow(c.stack, len(c.stack))
	}
	c.stack = append(c.stack, f)
}

// pop closes the innermost object or array.
func (c *checker) pop() {
	f := &c.stack[len(c.stack)-1]
	if f.indexed {
		c.tables = c.tables[:f.table]
	}
	if f.object {
		c.keys = c.keys[:f.first]
		c.scratch = c.scratch[:f.scratch]
	}
	c.stack = c.stack[:len(c.stack)-1]
}

// key reads an object key at i, checks that the object has not seen it,
// and reads the colon after it.
func (c *checker) key(i int) (int, *Error) {
	b := c.b
	if i >= len(b) || b[i] != '"' {
		return i, c.unexpected(i, "looking for beginning of object key string")
	}
	end, escaped, err := c.string(i)
	if err != nil {
		return end, err
	}
	f := &c.stack[len(c.stack)-1]
	f.key = i
	if err := c.addKey(f, i, end, escaped); err != nil {
		return i, err
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return i, c.unexpected(i, "after object key")
	}
	return i + 1, nil
}

// plain marks the bytes a string holds as they are: printable ASCII but
// the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string reads the string whose opening quote is at i. It returns the
// offset after its closing quote, and whether it holds escapes.
func (c *checker) string(i int) (end int, escaped bool, err *Error) {
	b := c.b
	i++
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, escaped, c.unexpected(i, "")
		}
		switch ch := b[i]; {
		case ch == '"':
			return i + 1, escaped, nil
		case ch == '\\':
			escaped = true
			if i, err = c.escape(i); err != nil {
				return i, escaped, err
			}
		case ch < 0x20:
			return i, escaped, c.unexpected(i, "in string literal")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, escaped, c.invalidUTF8(i)
			}
			i += size
		}
	}
}

// escape reads the escape sequence whose backslash is at i, and returns
// the offset after it. A high surrogate escape must be followed at once
// by a low surrogate escape; the two are read together.
func (c *checker) escape(i int) (int, *Error) {
	b := c.b
	if i+1 >= len(b) {
		return i, c.unexpected(len(b), "")
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, nil
	case 'u':
	default:
		return i, c.unexpected(i+1, "in string escape code")
	}
	r, err := c.hex4(i + 2)
	switch {
	case err != nil:
		return i, err
	case !utf16.IsSurrogate(r):
		return i + 6, nil
	case r >= 0xdc00:
		return i, c.loneSurrogate(i)
	}
	j := i + 6
	if j >= len(b) || b[j] == '\\' && j+1 >= len(b) {
		return j, c.unexpected(len(b), "")
	}
	if b[j] != '\\' || b[j+1] != 'u' {
		return i, c.loneSurrogate(i)
	}
	r, err = c.hex4(j + 2)
	switch {
	case err != nil:
		return j, err
	case r < 0xdc00 || r > 0xdfff:
		return i, c.loneSurrogate(i)
	}
	return j + 6, nil
}

// hex4 reads the four hexadecimal digits of a \u escape at i.
func (c *checker) hex4(i int) (rune, *Error) {
	b := c.b
	var r rune
	for j := i; j < i+4; j++ {
		if j >= len(b) {
			return 0, c.unexpected(j, "")
		}
		h := unhex(b[j])
		if h < 0 {
			return 0, c.unexpected(j, "in \\u hexadecimal character escape")
		}
		r = r<<4 | h
	}
	return r, nil
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// number reads the number starting at i (RFC 8259: -?(0|[1-9][0-9]*)
// (\.[0-9]+)?([eE][+-]?[0-9]+)?) and returns the offset after it.
func (c *checker) number(i int) (int, *Error) {
	b := c.b
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, c.unexpected(i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, c.unexpected(i, "after decimal point in numeric literal")
		}
		i = skipDigits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, c.unexpected(i, "in exponent of numeric literal")
		}
		i = skipDigits(b, i+1)
	}
	return i, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// literal reads true, false or null at i.
func (c *checker) literal(i int, lit string) (int, *Error) {
	b := c.b
	for k := 1; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, c.unexpected(i+k, "in literal "+lit+" (expecting "+quoteChar(lit[k])+")")
		}
	}
	return i + len(lit), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// unexpected reports the byte at i, which the grammar does not allow
// where it is, in encoding/json's words; or the end of the body if i is
// past it; or invalid UTF-8 if the byte starts no UTF-8 sequence.
func (c *checker) unexpected(i int, context string) *Error {
	if i >= len(c.b) {
		return c.fail(Syntax, len(c.b), "unexpected end of JSON input")
	}
	if r, size := utf8.DecodeRune(c.b[i:]); r == utf8.RuneError && size == 1 {
		return c.invalidUTF8(i)
	}
	return c.fail(Syntax, i, "invalid character "+quoteChar(c.b[i])+" "+context)
}

func (c *checker) invalidUTF8(i int) *Error {
	return c.fail(InvalidUTF8, i, "invalid UTF-8 byte 0x"+strconv.FormatUint(uint64(c.b[i]), 16))
}

func (c *checker) loneSurrogate(i int) *Error {
	return c.fail(LoneSurrogate, i, "lone UTF-16 surrogate "+string(c.b[i:i+6]))
}

// fail returns an error at offset i, with the path of the open objects
// and arrays.
func (c *checker) fail(kind Kind, i int, msg string) *Error {
	var path []string
	for _, f := range c.stack {
		switch {
		case !f.object:
			path = append(path, strconv.Itoa(f.n))
		case f.key >= 0:
			path = append(path, string(c.keyAt(f.key)))
		}
	}
	return &Error{Kind: kind, Offset: i, Path: path, Msg: msg}
}

// quoteChar formats c as encoding/json does in its syntax errors.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
