package handlers

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
)

// ClientStore is what the handlers need of clients.Service.
type ClientStore interface {
	Authenticate(ctx context.Context, apiKey string) (clients.Client, error)
	Create(ctx context.Context, name string, jobTypes ...string) (clients.Client, string, string, error)
	Update(ctx context.Context, clientID string, u clients.Update) (clients.Client, error)
	Get(ctx context.Context, id string) (clients.Client, error)
	List(ctx context.Context, limit int, cursor string) ([]clients.Client, string, error)
	AddKey(ctx context.Context, clientID string) (clients.Key, string, error)
	RevokeKey(ctx context.Context, clientID, keyID string) error
	Disable(ctx context.Context, clientID string) error
	RotateSecret(ctx context.Context, clientID string, grace time.Duration) (string, error)
}

type createdClient struct {
	clients.Client
	APIKey        string `json:"apiKey"`
	SigningSecret string `json:"signingSecret"`
}

// clientRequest is the body of a client's creation or change.
type clientRequest struct {
	Name     *string   `json:"name"`
	JobTypes *[]string `json:"jobTypes"`
}

// jobTypeName is what an allowed job type may look like; the service's
// own type pattern decides at submission.
var jobTypeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,256}$`)

// check validates the fields present; creating needs a name.
func (c *clientRequest) check(creating bool) error {
	var fe []FieldError
	if c.Name != nil {
		*c.Name = strings.TrimSpace(*c.Name)
	}
	if (creating || c.Name != nil) && (c.Name == nil || *c.Name == "" || len(*c.Name) > 200) {
		fe = append(fe, FieldError{Field: "name", Code: "required", Message: "name is required, at most 200 characters"})
	}
	if c.JobTypes != nil {
		seen := map[string]bool{}
		for _, t := range *c.JobTypes {
			if !jobTypeName.MatchString(t) || seen[t] || len(*c.JobTypes) > 100 {
				fe = append(fe, FieldError{Field: "jobTypes", Code: "invalid",
					Message: "jobTypes must be at most 100 distinct job type names of letters, digits, _ . and -"})
				break
			}
			seen[t] = true
		}
	}
	if len(fe) > 0 {
		return invalid(fe...)
	}
	return nil
}

func createClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req clientRequest
		err := decodeBody(w, r, 64<<10, &req)
		if err == nil {
			err = req.check(true)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		var types []string
		if req.JobTypes != nil {
			types = *req.JobTypes
		}
		c, key, secret, err := store.Create(r.Context(), *req.Name, types...)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/admin/v1/clients/"+c.ID)
		respond(w, http.StatusCreated, createdClient{Client: c, APIKey: key, SigningSecret: secret})
	})
}

// updateClient changes a client's name or its allowed job types.
func updateClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Client)
		var req clientRequest
		if err == nil {
			err = decodeBody(w, r, 64<<10, &req)
		}
		if err == nil {
			err = req.check(false)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		c, err := store.Update(r.Context(), id, clients.Update{Name: req.Name, JobTypes: req.JobTypes})
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, c)
	})
}

func listClients(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, cursor, err := pageParams(r.URL.Query())
		if err != nil {
			writeError(w, r, err)
			return
		}
		list, next, err := store.List(r.Context(), limit, cursor)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, listPage[clients.Client]{Data: list, NextCursor: next})
	})
}

func getClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Client)
		if err != nil {
			writeError(w, r, err)
			return
		}
		c, err := store.Get(r.Context(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, c)
	})
}

func disableClient(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Client)
		if err == nil {
			err = store.Disable(r.Context(), id)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func addKey(store ClientStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Client)
		if err != nil {
			writeError(w, r, err)
			return
		}
		k, apiKey, err := store.AddKey(r.Context(), id)
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
		id, err := pathID(r, "id", ids.Client)
		var keyID string
		if err == nil {
			keyID, err = pathID(r, "keyId", ids.Key)
		}
		if err == nil {
			err = store.RevokeKey(r.Context(), id, keyID)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func rotateSecret(store ClientStore, grace time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id", ids.Client)
		if err != nil {
			writeError(w, r, err)
			return
		}
		secret, err := store.RotateSecret(r.Context(), id, grace)
		if err != nil {
			writeError(w, r, err)
			return
		}
		respond(w, http.StatusOK, map[string]any{"signingSecret": secret,
			"previousSecretValidUntil": time.Now().Add(grace).UTC().Truncate(time.Second)})
	})
}
