package strictjson_test

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/strictjson"
)

// refCheck is a slow reference for Check: a recursive descent parser that
// decodes every string and keeps a map per object, written for clarity
// rather than speed, to hold Check's results against in FuzzCheck.
func refCheck(b []byte) *strictjson.Error {
	p := &refParser{b: b}
	p.space()
	if err := p.value(); err != nil {
		return err
	}
	p.space()
	if p.i < len(b) {
		return p.syntax("after top-level value")
	}
	return nil
}

type refParser struct {
	b     []byte
	i     int
	path  []string
	depth int
}

func (p *refParser) fail(kind strictjson.Kind, off int, msg string) *strictjson.Error {
	var path []string
	if len(p.path) > 0 {
		path = append([]string(nil), p.path...)
	}
	return &strictjson.Error{Kind: kind, Offset: off, Path: path, Msg: msg}
}

// syntax reports the byte at p.i, or the end of the body, or invalid UTF-8.
func (p *refParser) syntax(context string) *strictjson.Error {
	if p.i >= len(p.b) {
		return p.fail(strictjson.Syntax, len(p.b), "unexpected end of JSON input")
	}
	if !utf8.FullRune(p.b[p.i:]) || !startsRune(p.b[p.i:]) {
		return p.fail(strictjson.InvalidUTF8, p.i, "invalid UTF-8 byte 0x"+strconv.FormatUint(uint64(p.b[p.i]), 16))
	}
	return p.fail(strictjson.Syntax, p.i, "invalid character "+refQuoteChar(p.b[p.i])+" "+context)
}

// startsRune reports whether b starts with a valid UTF-8 sequence.
func startsRune(b []byte) bool {
	for n := 1; n <= 4 && n <= len(b); n++ {
		if utf8.Valid(b[:n]) {
			return true
		}
	}
	return false
}

func refQuoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (p *refParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *refParser) at(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

func (p *refParser) value() *strictjson.Error {
	if p.i >= len(p.b) {
		return p.syntax("")
	}
	switch c := p.b[p.i]; c {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		_, err := p.str()
		return err
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return p.number()
		}
		return p.syntax("looking for beginning of value")
	}
}

func (p *refParser) object() *strictjson.Error {
	if p.depth == strictjson.MaxDepth {
		return p.fail(strictjson.TooDeep, p.i, "exceeded max depth of 10000")
	}
	p.depth++
	defer func() { p.depth-- }()
	p.i++
	p.space()
	if p.at('}') {
		p.i++
		return nil
	}
	seen := map[string]bool{}
	for {
		p.space()
		if !p.at('"') {
			return p.syntax("looking for beginning of object key string")
		}
		start := p.i
		key, err := p.str()
		if err != nil {
			return err
		}
		p.path = append(p.path, key)
		if seen[key] {
			err := p.fail(strictjson.DuplicateKey, start, "duplicate key "+strconv.Quote(key))
			err.Key = key
			return err
		}
		seen[key] = true
		p.space()
		if !p.at(':') {
			return p.syntax("after object key")
		}
		p.i++
		p.space()
		if err := p.value(); err != nil {
			return err
		}
		p.space()
		switch {
		case p.at(','):
			p.i++
			p.path = p.path[:len(p.path)-1]
		case p.at('}'):
			p.i++
			p.path = p.path[:len(p.path)-1]
			return nil
		default:
			return p.syntax("after object key:value pair")
		}
	}
}

func (p *refParser) array() *strictjson.Error {
	if p.depth == strictjson.MaxDepth {
		return p.fail(strictjson.TooDeep, p.i, "exceeded max depth of 10000")
	}
	p.depth++
	defer func() { p.depth-- }()
	p.i++
	p.space()
	if p.at(']') {
		p.i++
		return nil
	}
	for n := 0; ; n++ {
		p.path = append(p.path, strconv.Itoa(n))
		p.space()
		if err := p.value(); err != nil {
			return err
		}
		p.space()
		switch {
		case p.at(','):
			p.i++
			p.path = p.path[:len(p.path)-1]
		case p.at(']'):
			p.i++
			p.path = p.path[:len(p.path)-1]
			return nil
		default:
			return p.syntax("after array element")
		}
	}
}

func (p *refParser) literal(lit string) *strictjson.Error {
	for k := range len(lit) {
		if !p.at(lit[k]) {
			return p.syntax("in literal " + lit + " (expecting " + refQuoteChar(lit[k]) + ")")
		}
		p.i++
	}
	return nil
}

func (p *refParser) digits() (n int) {
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

func (p *refParser) number() *strictjson.Error {
	if p.at('-') {
		p.i++
	}
	if p.at('0') {
		p.i++
	} else if p.digits() == 0 {
		return p.syntax("in numeric literal")
	}
	if p.at('.') {
		p.i++
		if p.digits() == 0 {
			return p.syntax("after decimal point in numeric literal")
		}
	}
	if p.at('e') || p.at('E') {
		p.i++
		if p.at('+') || p.at('-') {
			p.i++
		}
		if p.digits() == 0 {
			return p.syntax("in exponent of numeric literal")
		}
	}
	return nil
}

// str decodes the string at p.i.
func (p *refParser) str() (string, *strictjson.Error) {
	var out []rune
	p.i++
	for {
		if p.i >= len(p.b) {
			return "", p.syntax("")
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", p.syntax("in string literal")
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			out = append(out, r...)
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.syntax("")
			}
			out = append(out, r)
			p.i += size
		}
	}
}

// escape decodes the escape at p.i: a rune, or a surrogate pair.
func (p *refParser) escape() ([]rune, *strictjson.Error) {
	start := p.i
	p.i++
	if p.i >= len(p.b) {
		return nil, p.syntax("")
	}
	if r, ok := map[byte]rune{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[p.b[p.i]]; ok {
		p.i++
		return []rune{r}, nil
	}
	if p.b[p.i] != 'u' {
		return nil, p.syntax("in string escape code")
	}
	p.i++
	r1, err := p.hex()
	if err != nil {
		return nil, err
	}
	lone := p.fail(strictjson.LoneSurrogate, start, "lone UTF-16 surrogate "+string(p.b[start:start+6]))
	switch {
	case r1 < 0xd800 || r1 > 0xdfff:
		return []rune{r1}, nil
	case r1 >= 0xdc00:
		return nil, lone
	case p.i >= len(p.b) || p.at('\\') && p.i+1 >= len(p.b):
		p.i = len(p.b)
		return nil, p.syntax("")
	case p.b[p.i] != '\\' || p.b[p.i+1] != 'u':
		return nil, lone
	}
	p.i += 2
	r2, err := p.hex()
	if err != nil {
		return nil, err
	}
	if r2 < 0xdc00 || r2 > 0xdfff {
		return nil, lone
	}
	return []rune{utf16.DecodeRune(r1, r2)}, nil
}

func (p *refParser) hex() (rune, *strictjson.Error) {
	var r rune
	for range 4 {
		if p.i >= len(p.b) {
			return 0, p.syntax("")
		}
		d, err := strconv.ParseUint(string(p.b[p.i]), 16, 8)
		if err != nil {
			return 0, p.syntax(`in \u hexadecimal character escape`)
		}
		r = r<<4 | rune(d)
		p.i++
	}
	return r, nil
}
