package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/timeindex"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/gorilla/mux"
)

// ClientStore is what the handlers need of clients.Store.
type ClientStore interface {
	Authenticate(ctx context.Context, apiKey string) (clients.Client, error)
	Create(ctx context.Context, name string) (clients.Client, string, string, error)
	Get(ctx context.Context, id string) (clients.Client, error)
	List(ctx context.Context, q timeindex.Query) ([]clients.Client, string, error)
	AddKey(ctx context.Context, clientID string) (clients.Key, string, error)
	RevokeKey(ctx context.Context, clientID, keyID string) error
	Disable(ctx context.Context, clientID string) error
	RotateSecret(ctx context.Context, clientID string, grace time.Duration) (string, error)
}

// DeliveryReader is what the handlers read of webhooks.Store.
type DeliveryReader interface {
	Get(ctx context.Context, id string) (webhooks.Delivery, error)
	GetWithAttempts(ctx context.Context, id string) (webhooks.Delivery, error)
	List(ctx context.Context, f webhooks.Filter, limit int, cursor string) ([]webhooks.Delivery, string, error)
}

// Replayer is what the handlers need of webhooks.Dispatcher.
type Replayer interface {
	Replay(ctx context.Context, id string) (webhooks.Delivery, error)
	StartBulkReplay(ctx context.Context, f webhooks.Filter, dryRun bool) (webhooks.BulkReplay, error)
	GetReplay(ctx context.Context, id string) (webhooks.BulkReplay, error)
}

type page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"nextCursor,omitempty"`
}

type createdClient struct {
	clients.Client
	APIKey        string `json:"apiKey"`
	SigningSecret string `json:"signingSecret"`
}

func createClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
		}
		if err := decodeBody(w, r, 64<<10, &req); err != nil {
			writeError(w, r, err)
			return
		}
		req.Name = strings.TrimSpace(req.Name)
		if req.Name == "" || len(req.Name) > 200 {
			writeError(w, r, &jobs.ValidationError{Fields: []jobs.FieldError{
				{Field: "name", Code: "required", Message: "name is required, at most 200 characters"}}})
			return
		}
		c, key, secret, err := store.Create(r.Context(), req.Name)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/admin/v1/clients/"+c.ID)
		respond(w, http.StatusCreated, createdClient{Client: c, APIKey: key, SigningSecret: secret})
	})
}

func listClients(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, cursor, err := pageParams(r.URL.Query())
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := store.List(r.Context(), timeindex.Query{Limit: limit, Cursor: cursor})
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, page[clients.Client]{Data: list, NextCursor: next})
	})
}

func getClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := store.Get(r.Context(), mux.Vars(r)["id"])
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, c)
	})
}

func disableClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := store.Disable(r.Context(), mux.Vars(r)["id"]); err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func addKey(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, apiKey, err := store.AddKey(r.Context(), mux.Vars(r)["id"])
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusCreated, struct {
			clients.Key
			APIKey string `json:"apiKey"`
		}{k, apiKey})
	})
}

func revokeKey(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := mux.Vars(r)
		if err := store.RevokeKey(r.Context(), v["id"], v["keyId"]); err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func rotateSecret(store ClientStore, grace time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, err := store.RotateSecret(r.Context(), mux.Vars(r)["id"], grace)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, map[string]any{"signingSecret": secret,
			"previousSecretValidUntil": time.Now().Add(grace).UTC().Truncate(time.Second)})
	})
}

func listJobs(svc JobService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, cursor, err := pageParams(q)
		if err == nil {
			err = checkStatus(q.Get("status"), jobs.ValidStatus)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := svc.List(r.Context(), jobs.Filter{Status: jobs.Status(q.Get("status")), ClientID: q.Get("clientId")}, limit, cursor)
		if err != nil {
			writeError(w, r, err)
			return
		}
		views := make([]jobView, len(list))
		for i, j := range list {
			views[i] = viewJob(j)
			views[i].ClientID = j.ClientID
		}
		respond(w, http.StatusOK, page[jobView]{Data: views, NextCursor: next})
	})
}

func listDeliveries(store DeliveryReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, cursor, err := pageParams(q)
		var f webhooks.Filter
		if err == nil {
			f, err = deliveryFilter(q.Get("status"), q.Get("clientId"), q.Get("since"), q.Get("until"))
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := store.List(r.Context(), f, limit, cursor)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, page[webhooks.Delivery]{Data: list, NextCursor: next})
	})
}

func getDelivery(store DeliveryReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := store.GetWithAttempts(r.Context(), mux.Vars(r)["id"])
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, deliveryView(d))
	})
}

// deliveryView puts the attempt log under "attempts", as the API promises;
// the count moves to "attemptCount".
func deliveryView(d webhooks.Delivery) any {
	log := d.AttemptLog
	if log == nil {
		log = []webhooks.Attempt{}
	}
	d.AttemptLog = nil
	return struct {
		webhooks.Delivery
		AttemptCount int                `json:"attemptCount"`
		Attempts     []webhooks.Attempt `json:"attempts"`
	}{d, d.Attempts, log}
}

func replayDelivery(rp Replayer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := rp.Replay(r.Context(), mux.Vars(r)["id"])
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusAccepted, d)
	})
}

func bulkReplay(rp Replayer, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Status   string `json:"status"`
			ClientID string `json:"clientId"`
			Since    string `json:"since"`
			Until    string `json:"until"`
			DryRun   bool   `json:"dryRun"`
		}
		if err := decodeBody(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		if req.Status == "" {
			req.Status = string(webhooks.StatusFailed)
		}
		f, err := deliveryFilter(req.Status, req.ClientID, req.Since, req.Until)
		if err != nil {
			// These are body fields, not query parameters: 422 like every other.
			var re *requestError
			if errors.As(err, &re) {
				err = &jobs.ValidationError{Fields: re.fields}
			}
			writeError(w, r, err)
			return
		}
		rep, err := rp.StartBulkReplay(r.Context(), f, req.DryRun)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/admin/v1/replays/"+rep.ID)
		respond(w, http.StatusAccepted, rep)
	})
}

func getReplay(rp Replayer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, err := rp.GetReplay(r.Context(), mux.Vars(r)["replayId"])
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, rep)
	})
}

func fieldErr(field, msg string) error {
	return badRequest(probParameter, field+": "+msg, jobs.FieldError{Field: field, Code: "invalid", Message: msg})
}

func pageParams(q url.Values) (limit int, cursor string, err error) {
	limit = 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return 0, "", fieldErr("limit", "must be a whole number from 1 to 500")
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}

func checkStatus(s string, valid func(string) bool) error {
	if s != "" && !valid(s) {
		return fieldErr("status", "unknown status "+quote(s))
	}
	return nil
}

func deliveryFilter(status, clientID, since, until string) (webhooks.Filter, error) {
	f := webhooks.Filter{Status: webhooks.Status(status), ClientID: clientID}
	if err := checkStatus(status, webhooks.ValidStatus); err != nil {
		return f, err
	}
	for _, p := range []struct {
		name, value string
		dst         *time.Time
	}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
		if p.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.value)
		if err != nil {
			return f, fieldErr(p.name, "must be an RFC 3339 time such as 2026-11-26T12:00:00Z")
		}
		*p.dst = t
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, fieldErr("until", "must be after since")
	}
	return f, nil
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
	dec := json.NewDecoder(strings.NewReader(string(body)))
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
		return &jobs.ValidationError{Fields: []jobs.FieldError{{Field: field, Code: "type",
			Message: "must be " + jsonKind(typeErr.Type.Kind().String()) + ", not " + typeErr.Value}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &jobs.ValidationError{Fields: []jobs.FieldError{{Field: field, Code: "unknown", Message: "unknown field"}}}
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
	var obj map[string]json.RawMessage
	if t == nil || t.Kind() != reflect.Struct || json.Unmarshal(body, &obj) != nil {
		return nil // not an object: Decode reports it
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
	var fe []jobs.FieldError
	for k := range obj {
		if !known[k] {
			fe = append(fe, jobs.FieldError{Field: k, Code: "unknown", Message: "unknown field"})
		}
	}
	if len(fe) == 0 {
		return nil
	}
	sort.Slice(fe, func(i, j int) bool { return fe[i].Field < fe[j].Field })
	return &jobs.ValidationError{Fields: fe}
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
