package apiclient_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/boomerang-dev/boomerang/apiclient"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// apiclient keeps its own copies of the admin API's types, so that the
// client library depends on nothing of the server's (the standard library
// only). TestTypesMatchTheServer keeps the copies honest: what the server
// encodes, every field set, decodes into the client's type with no field
// left over, and the client's type names no field the server never sends.
func TestTypesMatchTheServer(t *testing.T) {
	for _, tc := range []struct {
		name           string
		server, client any
	}{
		{name: "Attempt", server: &webhooks.Attempt{}, client: &apiclient.Attempt{}},
		{name: "BulkReplay", server: &webhooks.BulkReplay{Filter: webhooks.Filter{Status: webhooks.StatusFailed, ClientID: "cli_x",
			Since: time.Unix(1, 0), Until: time.Unix(2, 0)}}, client: &apiclient.BulkReplay{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fill(reflect.ValueOf(tc.server).Elem())
			sent, err := json.Marshal(tc.server)
			if err != nil {
				t.Fatal(err)
			}
			strict(t, sent, tc.client)
			fill(reflect.ValueOf(tc.client).Elem())
			own, err := json.Marshal(tc.client)
			if err != nil {
				t.Fatal(err)
			}
			if extra := slices.DeleteFunc(keys(t, own), func(k string) bool { return slices.Contains(keys(t, sent), k) }); len(extra) > 0 {
				t.Errorf("the client's %s has fields the server never sends: %v", tc.name, extra)
			}
		})
	}
}

// fill sets every exported field that JSON encodes to a value that is not
// empty, so that no omitempty field is left out.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1700000000, 0).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		if e.Kind() != reflect.Interface {
			fill(e)
		}
		v.SetMapIndex(k, e)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // json.RawMessage
			v.SetBytes([]byte(`{"x":1}`))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	}
}

// keys are a JSON object's top-level keys.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return slices.Collect(maps.Keys(m))
}

// TestDeliveryMatchesTheServer: a listed delivery (no payload, no log) and
// the detail view (GET /admin/v1/deliveries/{id}: the delivery with its
// payload, its log as "attempts" and the count as "attemptCount") decode
// into the client's types with no field left over.
func TestDeliveryMatchesTheServer(t *testing.T) {
	var d webhooks.Delivery
	fill(reflect.ValueOf(&d).Elem())
	payload, log := d.Payload, d.AttemptLog
	d.Payload, d.AttemptLog = nil, nil
	listed, _ := json.Marshal(d)
	strict(t, listed, &apiclient.Delivery{})
	detail, _ := json.Marshal(struct { // as handlers.deliveryView writes it
		webhooks.Delivery
		Payload      json.RawMessage    `json:"payload"`
		AttemptCount int                `json:"attemptCount"`
		TraceID      string             `json:"traceId"`
		Attempts     []webhooks.Attempt `json:"attempts"`
	}{d, payload, d.Attempts, "x", log})
	var got apiclient.DeliveryDetail
	strict(t, detail, &got)
	if len(got.Attempts) != 1 || got.Attempts[0].Number != 1 || string(got.Payload) != `{"x":1}` {
		t.Errorf("detail decoded as %+v", got)
	}
}

func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("decode into %T: %v\n%s", v, err, b)
	}
}
