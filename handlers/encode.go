package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/boomerang-dev/boomerang/strictjson"
)

func writeJSON(w http.ResponseWriter, status int, v any, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func respond(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v, "application/json") }

// readBody reads a JSON request body of at most max bytes and rejects what
// is not JSON text: another media type, invalid UTF-8, malformed JSON and
// repeated keys, each with its own problem.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, badRequest(probMediaType, "send Content-Type: application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, badRequest(probTooLarge, "the body exceeds "+formatBytes(max))
	}
	if err != nil {
		return nil, badRequest(probMalformed, "the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest(probMalformed, "the body is empty: send a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, badRequest(probBadUTF8, "JSON text must be UTF-8")
	}
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	return body, nil
}

// checkJSON validates the body in one linear pass (strictjson): syntax,
// repeated keys (parsers resolve them differently: a classic smuggling
// trick), lone UTF-16 surrogates (not Unicode; strict parsers reject the
// webhook that carries one) and nesting depth.
func checkJSON(body []byte) error {
	err := strictjson.Check(body)
	var se *strictjson.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Kind {
	case strictjson.DuplicateKey:
		return badRequest(probDuplicateKey, "the key "+quote(se.Key)+" appears twice in one object",
			FieldError{Field: se.Key, Code: "duplicate", Message: "repeated key at /" + strings.Join(se.Path, "/")})
	case strictjson.LoneSurrogate:
		field := se.TopField()
		if field == "" {
			field = "body"
		}
		return badRequest(probUnicode, "a string holds a lone UTF-16 surrogate at /"+strings.Join(se.Path, "/")+
			" (offset "+strconv.Itoa(se.Offset)+"), which is not Unicode",
			FieldError{Field: field, Code: "invalid", Message: "lone UTF-16 surrogate escape (" + se.Msg + ")"})
	case strictjson.InvalidUTF8:
		return badRequest(probBadUTF8, "JSON text must be UTF-8")
	case strictjson.TooDeep:
		return badRequest(probMalformed, "objects and arrays nest deeper than "+strconv.Itoa(strictjson.MaxDepth)+" levels")
	}
	return badRequest(probMalformed, se.Msg)
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// isUnavailable recognises storage that cannot be reached, or that
// refuses work for now (still loading its data, a read-only replica).
func isUnavailable(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "i/o timeout", "LOADING", "READONLY", "MASTERDOWN",
		"TRYAGAIN", "CLUSTERDOWN", "connection pool timeout", "client is closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// decodeBody reads a JSON object into v, refusing unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	body, err := readBody(w, r, max)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

// decodeStrict decodes a JSON object into v; an unknown field or a value of
// the wrong type is a validation error naming the field.
func decodeStrict(body []byte, v any) error {
	if err := exactKeys(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return badRequest(probMalformed, "the body must be a JSON object")
		}
		return invalid(FieldError{Field: field, Code: "type",
			Message: "must be " + jsonKind(typeErr.Type.Kind().String()) + ", not " + typeErr.Value})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid(FieldError{Field: field, Code: "unknown", Message: "unknown field"})
	}
	return badRequest(probMalformed, err.Error())
}

// exactKeys refuses object keys not spelled exactly as a json tag of the
// struct v points to. encoding/json matches names case-insensitively, so
// without this "callbackURL" would be taken for callbackUrl, and
// {"type":"a","TYPE":"b"} would pass the duplicate-key check yet decode "b".
func exactKeys(body []byte, v any) error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var obj map[string]skipped
	if t == nil || t.Kind() != reflect.Struct || json.Unmarshal(body, &obj) != nil {
		return nil // not an object: Decode reports it
	}
	known := jsonNames(t)
	var fe []FieldError
	for k := range obj {
		if !known[k] {
			fe = append(fe, FieldError{Field: k, Code: "unknown", Message: "unknown field"})
		}
	}
	if len(fe) == 0 {
		return nil
	}
	sort.Slice(fe, func(i, j int) bool { return fe[i].Field < fe[j].Field })
	return invalid(fe...)
}

// skipped is a JSON value exactKeys does not keep: it reads the keys only,
// without copying the values (a payload may be most of a large body).
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// fieldNames caches jsonNames by struct type.
var fieldNames sync.Map // reflect.Type → map[string]bool

// jsonNames is the set of JSON keys struct type t decodes, as spelled in
// its json tags.
func jsonNames(t reflect.Type) map[string]bool {
	if m, ok := fieldNames.Load(t); ok {
		return m.(map[string]bool)
	}
	known := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" {
			if name == "" {
				name = f.Name
			}
			known[name] = true
		}
	}
	fieldNames.Store(t, known)
	return known
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	}
	return "a number"
}
