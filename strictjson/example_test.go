package strictjson_test

import (
	"errors"
	"fmt"

	"github.com/boomerang-dev/boomerang/strictjson"
)

func ExampleCheck() {
	for _, body := range []string{
		`{"type":"echo","payload":{"items":[{"name":"a"},{"name":"b"}]}}`,
		`{"type":"echo","payload":{"items":[{"name":"a"},{"name":"b","\u006eame":"c"}]}}`,
		`{"type":"echo","payload":{"note":"\ud800"}}`,
		`{"type":"echo","payload":{"items":[1,2,]}}`,
	} {
		err := strictjson.Check([]byte(body))
		var e *strictjson.Error
		if !errors.As(err, &e) {
			fmt.Println("ok")
			continue
		}
		fmt.Printf("%v in field %q: %s\n", e.Kind, e.TopField(), e.Msg)
		fmt.Printf("  path %q, offset %d\n", e.Path, e.Offset)
	}
	// Output:
	// ok
	// duplicate key in field "payload": duplicate key "name"
	//   path ["payload" "items" "1" "name"], offset 60
	// lone surrogate in field "payload": lone UTF-16 surrogate \ud800
	//   path ["payload" "note"], offset 34
	// syntax in field "payload": invalid character ']' looking for beginning of value
	//   path ["payload" "items" "2"], offset 39
}

// A handler maps each kind of problem to its own response, and keeps the
// bytes it checked for encoding/json.
func ExampleError() {
	body := []byte(`{"metadata":{"a":"b","a":"c"}}`)
	var e *strictjson.Error
	if err := strictjson.Check(body); errors.As(err, &e) {
		switch e.Kind {
		case strictjson.DuplicateKey:
			fmt.Printf("400 duplicate-key: the key %q appears twice in %q\n", e.Key, e.TopField())
		case strictjson.InvalidUTF8:
			fmt.Println("400 invalid-utf8")
		default:
			fmt.Println("400 malformed-json:", e.Msg)
		}
		fmt.Println(e)
	}
	// Output:
	// 400 duplicate-key: the key "a" appears twice in "metadata"
	// strictjson: duplicate key "a" at /metadata/a (offset 21)
}
