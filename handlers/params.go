package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/gorilla/mux"
)

type listPage[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func fieldErr(field, msg string) error {
	return badRequest(probParameter, field+": "+msg, FieldError{Field: field, Code: "invalid", Message: msg})
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

// parseStatus reads a status filter in any case; an unknown one is an
// error that lists the valid values.
func parseStatus(s string, valid []string) (string, error) {
	if s == "" {
		return "", nil
	}
	up := strings.ToUpper(s)
	if !slices.Contains(valid, up) {
		return "", fieldErr("status", "unknown status "+quote(s)+"; one of "+strings.Join(valid, ", "))
	}
	return up, nil
}

// checkClientID refuses a clientId filter that is not a client id.
func checkClientID(id string) error {
	if id != "" && !ids.Valid(ids.Client, id) {
		return fieldErr("clientId", "must be a client id (cli_ and 26 characters)")
	}
	return nil
}

func deliveryFilter(status, clientID, since, until string) (webhooks.Filter, error) {
	st, err := parseStatus(status, webhooks.Statuses())
	if err == nil {
		err = checkClientID(clientID)
	}
	f := webhooks.Filter{Status: webhooks.Status(st), ClientID: clientID}
	if err != nil {
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

// errMalformedID is a path id of the wrong format: not found, like a
// missing one, and never looked up.
var errMalformedID = errors.New("malformed id")

// pathID returns the path variable name if it is a well-formed id with
// prefix (package ids); any other value cannot name anything.
func pathID(r *http.Request, name, prefix string) (string, error) {
	id := mux.Vars(r)[name]
	if !ids.Valid(prefix, id) {
		return "", errMalformedID
	}
	return id, nil
}
