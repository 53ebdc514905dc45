// Package ids makes and checks Boomerang's identifiers: a type prefix
// ("req_", "msg_", "cli_", "key_", "rpl_") followed by 26 characters of
// Crockford base32, like a ULID: 10 for the creation time in milliseconds,
// 16 (80 bits) random. IDs of one kind therefore sort by creation time, and
// carry it.
//
// Every id that comes in from outside (a URL path) is checked with Valid
// before it reaches storage: a malformed id is simply not found.
package ids

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"
)

// The prefixes of Boomerang's ids.
const (
	Request  = "req_"
	Delivery = "msg_"
	Client   = "cli_"
	Key      = "key_"
	Replay   = "rpl_"
	Worker   = "wrk_"
)

// Crockford is the alphabet: no I, L, O or U.
const Crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// TimeLen is the length of the time part, RandLen of the random part.
const (
	TimeLen = 10
	RandLen = 16
	Len     = TimeLen + RandLen
)

// TimePrefix encodes t's Unix milliseconds as 10 Crockford characters whose
// lexicographic order is time order.
func TimePrefix(t time.Time) string {
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	var b [TimeLen]byte
	for i := TimeLen - 1; i >= 0; i-- {
		b[i] = Crockford[ms&31]
		ms >>= 5
	}
	return string(b[:])
}

// PrefixTime decodes the first TimeLen characters of s, made by TimePrefix.
func PrefixTime(s string) (time.Time, bool) {
	if len(s) < TimeLen {
		return time.Time{}, false
	}
	var ms int64
	for i := 0; i < TimeLen; i++ {
		v := strings.IndexByte(Crockford, s[i])
		if v < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | int64(v)
	}
	return time.UnixMilli(ms).UTC(), true
}

// MaxPartitions bounds the partition an id can carry (two characters).
const MaxPartitions = 32 * 32

// New returns prefix + the time prefix of now + 16 random characters, e.g.
// "req_01JD3M4X2Z8QK3V9W7T5N6P4R2", in partition 0.
func New(prefix string, now time.Time) string { return NewIn(prefix, now, 0) }

// NewIn is New for an id that lives in partition p: the first two random
// characters carry p (0 ≤ p < MaxPartitions), so that anyone holding the id
// knows where its records are (Partition). The other 14 carry 70 random bits.
func NewIn(prefix string, now time.Time, p int) string {
	id := []byte(newRaw(prefix, now))
	at := len(prefix) + TimeLen
	id[at], id[at+1] = Crockford[(p>>5)&31], Crockford[p&31]
	return string(id)
}

// Partition returns the partition a valid id carries (see NewIn); ids of
// one job (req_, msg_) share it.
func Partition(id string) int {
	i := strings.IndexByte(id, '_')
	if i < 0 || len(id) < i+1+TimeLen+2 {
		return 0
	}
	at := i + 1 + TimeLen
	hi, lo := strings.IndexByte(Crockford, id[at]), strings.IndexByte(Crockford, id[at+1])
	if hi < 0 || lo < 0 {
		return 0
	}
	return hi<<5 | lo
}

// Body returns the 26 characters after the prefix: what the ids of one job
// (req_X, msg_X) have in common.
func Body(id string) string {
	if i := strings.IndexByte(id, '_'); i >= 0 {
		return id[i+1:]
	}
	return id
}

func newRaw(prefix string, now time.Time) string {
	var rnd [10]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		panic(fmt.Sprintf("ids: crypto/rand failed: %v", err))
	}
	var b strings.Builder
	b.Grow(len(prefix) + Len)
	b.WriteString(prefix)
	b.WriteString(TimePrefix(now))
	var acc uint64
	bits := 0
	for _, c := range rnd { // 80 bits → 16 characters of 5 bits
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			b.WriteByte(Crockford[(acc>>(bits-5))&31])
			bits -= 5
		}
	}
	return b.String()
}

// Valid reports whether id is prefix followed by exactly Len Crockford
// characters (upper case), as New makes them.
func Valid(prefix, id string) bool {
	if len(id) != len(prefix)+Len || id[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(id); i++ {
		if strings.IndexByte(Crockford, id[i]) < 0 {
			return false
		}
	}
	// The first character holds the top bits of a 50-bit millisecond count:
	// a time that fits in 48 bits (ULID) starts with 0–7.
	return id[len(prefix)] <= '7'
}

// Time returns the creation time a valid id of that prefix carries.
func Time(prefix, id string) (time.Time, bool) {
	if !Valid(prefix, id) {
		return time.Time{}, false
	}
	return PrefixTime(id[len(prefix):])
}
