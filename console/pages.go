package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/tasks"
	"github.com/boomerang-dev/boomerang/webhooks"
)

// deliveryQuery is the deliveries page's filter as the form shows it.
type deliveryQuery struct {
	Status, Client, Since, Until string
}

func (q deliveryQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"status": q.Status, "client": q.Client, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// filter checks the query and makes it a store filter.
func (q deliveryQuery) filter() (webhooks.Filter, error) {
	var f webhooks.Filter
	if q.Status != "" {
		if !webhooks.ValidStatus(q.Status) {
			return f, inputError("status must be one of " + strings.Join(webhooks.Statuses(), ", "))
		}
		f.Status = webhooks.Status(q.Status)
	}
	if q.Client != "" && !ids.Valid(ids.Client, q.Client) {
		return f, inputError("client must be a client id (" + ids.Client + "…)")
	}
	f.ClientID = q.Client
	var err error
	if f.Since, err = parseTime("since", q.Since); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", q.Until); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, inputError("until is before since")
	}
	return f, nil
}

// parseTime reads RFC 3339 or a datetime-local input's value (UTC).
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, inputError(field + " must be a time such as 2026-12-01T05:30 (UTC) or RFC 3339")
}

func readDeliveryQuery(get func(string) string) deliveryQuery {
	return deliveryQuery{Status: strings.TrimSpace(get("status")), Client: strings.TrimSpace(get("client")),
		Since: strings.TrimSpace(get("since")), Until: strings.TrimSpace(get("until"))}
}

// nextURL is the link to the page after this one, or "" on the last.
func nextURL(path string, v url.Values, next string) string {
	if next == "" {
		return ""
	}
	v.Set("cursor", next)
	return path + "?" + v.Encode()
}

// deliveries lists deliveries newest first, a page at a time: one store
// listing per page, never a count.
func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, s session) {
	q := readDeliveryQuery(r.URL.Query().Get)
	f, err := q.filter()
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	cursor := r.URL.Query().Get("cursor")
	list, next, err := c.o.Deliveries.ListDeliveries(r.Context(), f, pageSize, cursor)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "deliveries", s, map[string]any{
		"Query": q, "Statuses": webhooks.Statuses(), "Rows": list, "Paged": cursor != "", "CanRetry": c.o.Retrier != nil,
		"First": "/admin/deliveries?" + q.values().Encode(), "Next": nextURL("/admin/deliveries", q.values(), next)})
}

func (c *Console) delivery(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	if !ids.Valid(ids.Delivery, id) {
		c.failErr(w, r, s, webhooks.ErrNotFound)
		return
	}
	d, err := c.o.Deliveries.GetDelivery(r.Context(), id, true)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "delivery", s, map[string]any{"D": d, "Payload": indentJSON(d.Payload),
		"Replayed": r.URL.Query().Get("replayed") != "", "Retried": r.URL.Query().Get("retried") != "",
		"CanRetry": c.o.Retrier != nil, "Refresh": c.refreshes(d)})
}

// refreshes: a PENDING delivery's page reloads itself while its next
// attempt is due within a minute (or unknown); one that waits longer for
// it has nothing to show until then, and its Retry now button stays put.
func (c *Console) refreshes(d webhooks.Delivery) bool {
	if d.Status != webhooks.StatusPending {
		return false
	}
	return d.NextAttemptAt == nil || d.NextAttemptAt.Sub(c.o.Now()) < time.Minute
}

// retryNow makes a PENDING delivery's next attempt now and shows the
// delivery after it.
func (c *Console) retryNow(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	if !ids.Valid(ids.Delivery, id) {
		c.failErr(w, r, s, webhooks.ErrNotFound)
		return
	}
	extendWrite(w)
	if _, err := c.o.Retrier.RetryNow(r.Context(), id); err != nil {
		c.failErr(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/admin/deliveries/"+id+"?retried=1", http.StatusSeeOther)
}

// bulkRetryNow counts (dry run), or retries now, every PENDING delivery
// the filter matches (its status is always PENDING), and shows the counts.
func (c *Console) bulkRetryNow(w http.ResponseWriter, r *http.Request, s session) {
	q := readDeliveryQuery(r.PostFormValue)
	q.Status = string(webhooks.StatusPending)
	f, err := q.filter()
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	dry := r.PostFormValue("dryRun") != ""
	extendWrite(w)
	res, err := c.o.Retrier.RetryNowAll(r.Context(), f, dry)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "retry_now", s, map[string]any{"Query": q, "R": res})
}

func indentJSON(raw json.RawMessage) string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	if !ids.Valid(ids.Delivery, id) {
		c.failErr(w, r, s, webhooks.ErrNotFound)
		return
	}
	if _, err := c.o.Replays.Replay(r.Context(), id); err != nil {
		c.failErr(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/admin/deliveries/"+id+"?replayed=1", http.StatusSeeOther)
}

// bulkReplay counts (dry run) or starts a replay of every delivery the
// filter matches; FAILED unless another status is chosen.
func (c *Console) bulkReplay(w http.ResponseWriter, r *http.Request, s session) {
	q := readDeliveryQuery(r.PostFormValue)
	if q.Status == "" {
		q.Status = string(webhooks.StatusFailed)
	}
	if q.Status == string(webhooks.StatusPending) {
		c.failErr(w, r, s, errReplayPending)
		return
	}
	f, err := q.filter()
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	dry := r.PostFormValue("dryRun") != ""
	rep, err := c.o.Replays.StartBulkReplay(r.Context(), f, dry)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	if dry {
		c.render(w, r, http.StatusOK, "replay_dry", s, map[string]any{"Query": q, "Matched": rep.Matched})
		return
	}
	http.Redirect(w, r, "/admin/replays/"+rep.ID, http.StatusSeeOther)
}

func (c *Console) getReplay(w http.ResponseWriter, r *http.Request, s session) (webhooks.BulkReplay, bool) {
	id := r.PathValue("id")
	if !ids.Valid(ids.Replay, id) {
		c.failErr(w, r, s, webhooks.ErrReplayNotFound)
		return webhooks.BulkReplay{}, false
	}
	rep, err := c.o.Replays.GetReplay(r.Context(), id)
	if err != nil {
		c.failErr(w, r, s, err)
		return rep, false
	}
	return rep, true
}

func (c *Console) replayPage(w http.ResponseWriter, r *http.Request, s session) {
	if rep, ok := c.getReplay(w, r, s); ok {
		c.render(w, r, http.StatusOK, "replay", s, map[string]any{"R": rep, "Done": rep.Replayed + rep.Skipped})
	}
}

// replayStatus is the replay's progress as JSON, which its page polls.
func (c *Console) replayStatus(w http.ResponseWriter, r *http.Request, s session) {
	if rep, ok := c.getReplay(w, r, s); ok {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	}
}

func (c *Console) jobs(w http.ResponseWriter, r *http.Request, s session) {
	qs := r.URL.Query()
	status, client := strings.TrimSpace(qs.Get("status")), strings.TrimSpace(qs.Get("client"))
	if status != "" && !jobs.ValidStatus(status) {
		c.failErr(w, r, s, inputError("status must be one of "+strings.Join(jobs.Statuses(), ", ")))
		return
	}
	if client != "" && !ids.Valid(ids.Client, client) {
		c.failErr(w, r, s, inputError("client must be a client id ("+ids.Client+"…)"))
		return
	}
	cursor := qs.Get("cursor")
	list, next, err := c.o.Jobs.List(r.Context(), jobs.Filter{Status: jobs.Status(status), ClientID: client}, pageSize, cursor)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	v := url.Values{}
	if status != "" {
		v.Set("status", status)
	}
	if client != "" {
		v.Set("client", client)
	}
	c.render(w, r, http.StatusOK, "jobs", s, map[string]any{"Status": status, "Client": client, "Statuses": jobs.Statuses(),
		"Rows": list, "Paged": cursor != "", "First": "/admin/jobs?" + v.Encode(), "Next": nextURL("/admin/jobs", v, next)})
}

func (c *Console) clients(w http.ResponseWriter, r *http.Request, s session) {
	cursor := r.URL.Query().Get("cursor")
	list, next, err := c.o.Clients.List(r.Context(), pageSize, cursor)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "clients", s, map[string]any{"Rows": list, "Paged": cursor != "",
		"Next": nextURL("/admin/clients", url.Values{}, next)})
}

func (c *Console) createClient(w http.ResponseWriter, r *http.Request, s session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || len(name) > 200 {
		c.failErr(w, r, s, inputError("name is required, at most 200 characters"))
		return
	}
	types, err := jobTypes(r.PostFormValue("jobTypes"))
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	cl, key, secret, err := c.o.Clients.Create(r.Context(), name, types...)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusCreated, "secret", s, map[string]any{"Heading": "Client " + cl.Name + " created", "Client": cl.ID,
		"Items": []secretItem{{"API key (Authorization: Bearer …)", key}, {"Signing secret (verifies webhooks)", secret}}})
}

type secretItem struct{ Label, Value string }

func (c *Console) clientID(w http.ResponseWriter, r *http.Request, s session) (string, bool) {
	id := r.PathValue("id")
	if !ids.Valid(ids.Client, id) {
		c.failErr(w, r, s, clients.ErrNotFound)
		return "", false
	}
	return id, true
}

func (c *Console) client(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := c.clientID(w, r, s)
	if !ok {
		return
	}
	cl, err := c.o.Clients.Get(r.Context(), id)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "client", s, map[string]any{"C": cl, "Revoked": r.URL.Query().Get("revoked")})
}

func (c *Console) addKey(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := c.clientID(w, r, s)
	if !ok {
		return
	}
	k, key, err := c.o.Clients.AddKey(r.Context(), id)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusCreated, "secret", s, map[string]any{"Heading": "New API key " + k.ID, "Client": id,
		"Items": []secretItem{{"API key (Authorization: Bearer …)", key}}})
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := c.clientID(w, r, s)
	if !ok {
		return
	}
	keyID := r.PathValue("keyId")
	if !ids.Valid(ids.Key, keyID) {
		c.failErr(w, r, s, clients.ErrKeyNotFound)
		return
	}
	if err := c.o.Clients.RevokeKey(r.Context(), id, keyID); err != nil {
		c.failErr(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/admin/clients/"+id+"?revoked="+url.QueryEscape(keyID), http.StatusSeeOther)
}

func (c *Console) rotateSecret(w http.ResponseWriter, r *http.Request, s session) {
	id, ok := c.clientID(w, r, s)
	if !ok {
		return
	}
	secret, err := c.o.Clients.RotateSecret(r.Context(), id, c.o.Grace)
	if err != nil {
		c.failErr(w, r, s, err)
		return
	}
	until := c.o.Now().Add(c.o.Grace).UTC().Truncate(time.Second).Format(time.RFC3339)
	c.render(w, r, http.StatusOK, "secret", s, map[string]any{"Heading": "Signing secret rotated", "Client": id,
		"Note":  "Webhooks carry signatures by both the old and the new secret until " + until + ".",
		"Items": []secretItem{{"New signing secret", secret}}})
}

// queueState shows the asynq queues (read at most every 10 s, shared
// with every other reader) and the ready lists' depth.
func (c *Console) queueState(w http.ResponseWriter, r *http.Request, s session) {
	data := map[string]any{"Monitor": c.o.Monitor != nil}
	var qs []tasks.QueueState
	var at time.Time
	var qerr error
	if c.o.Queues != nil {
		qs, at, qerr = c.o.Queues.Queues(r.Context())
	}
	if qerr != nil {
		c.o.Logger.WarnContext(r.Context(), "console: read queue state", "error", qerr)
		data["QueueError"] = "The queues could not be read just now; showing the last good reading, if any."
	}
	data["Queues"], data["ReadAt"] = qs, at
	if c.o.Ready != nil {
		n, err := c.o.Ready.ReadyLengths(r.Context())
		if err != nil {
			c.o.Logger.WarnContext(r.Context(), "console: read ready lists", "error", err)
			data["ReadyError"] = "The ready lists could not be read."
		}
		data["Ready"] = n
	}
	c.render(w, r, http.StatusOK, "state", s, data)
}

// jobTypeName is what an allowed job type may look like (as the admin
// API's); the service's own type pattern decides at submission.
var jobTypeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,256}$`)

// jobTypes reads a list of job types separated by commas or spaces; none
// means every type.
func jobTypes(field string) ([]string, error) {
	types := strings.FieldsFunc(field, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	seen := map[string]bool{}
	for _, t := range types {
		if !jobTypeName.MatchString(t) || seen[t] || len(types) > 100 {
			return nil, inputError("job types must be at most 100 distinct names of letters, digits, _ . and -, separated by commas")
		}
		seen[t] = true
	}
	return types, nil
}

// retryWriteTimeout is how long a retry-now page may take to answer: its
// attempt (up to the delivery timeout), or a bulk run, comes first, and
// either can outlast the server's write timeout.
const retryWriteTimeout = 10 * time.Minute

func extendWrite(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(retryWriteTimeout))
}
