package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/page"
	"github.com/boomerang-dev/boomerang/webhooks"
)

var pageNames = []string{"login", "error", "deliveries", "delivery", "replay_dry", "replay", "retry_now", "jobs", "clients", "client", "secret", "state"}

func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"ts": func(v any) string {
			switch t := v.(type) {
			case time.Time:
				if t.IsZero() {
					return ""
				}
				return t.UTC().Format("2006-01-02 15:04:05Z")
			case *time.Time:
				if t == nil || t.IsZero() {
					return ""
				}
				return t.UTC().Format("2006-01-02 15:04:05Z")
			}
			return ""
		},
		"round": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"lower": func(s any) string { return strings.ToLower(fmt.Sprint(s)) },
	}
	pages := make(map[string]*template.Template, len(pageNames))
	for _, n := range pageNames {
		pages[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return pages
}

// view is what every page template gets.
type view struct {
	Title    string
	Nav      string
	LoggedIn bool
	CSRF     string
	Data     any
}

// render writes a page; s is the zero session on the login and error
// pages of a browser not logged in.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s session, data any) {
	v := view{Title: name, Nav: name, LoggedIn: s.id != nil, Data: data}
	if v.LoggedIn {
		v.CSRF = c.keys.csrfToken(s)
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.o.Logger.ErrorContext(r.Context(), "console template", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page for a browser not (or no longer) logged in.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", session{}, map[string]any{"Status": status, "Message": msg})
}

// failErr renders an error page for a logged-in browser, with the status
// and message the error deserves; unexpected errors are logged, not shown.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, s session, err error) {
	status, msg := http.StatusInternalServerError, "Something went wrong; the server log says what."
	var ve *jobs.ValidationError
	var ie inputError
	var np *webhooks.NotPendingError
	switch {
	case errors.As(err, &ie):
		status, msg = http.StatusBadRequest, ie.Error()
	case errors.As(err, &ve):
		status, msg = http.StatusBadRequest, ve.Error()
	case errors.Is(err, webhooks.ErrNotFound), errors.Is(err, webhooks.ErrReplayNotFound), errors.Is(err, clients.ErrNotFound),
		errors.Is(err, clients.ErrKeyNotFound), errors.Is(err, jobs.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.As(err, &np):
		status, msg = http.StatusConflict, "The delivery is "+string(np.Status)+", not PENDING: there is no attempt left to make now; replay it instead."
	case errors.Is(err, webhooks.ErrConflict), errors.Is(err, errReplayPending):
		status, msg = http.StatusConflict, "PENDING deliveries are not replayed: their attempts are still under way. "+c.retryAdvice()
	case errors.Is(err, page.ErrBadCursor):
		status, msg = http.StatusBadRequest, "That page cursor is not one this console made: start from the first page."
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return
	default:
		c.o.Logger.ErrorContext(r.Context(), "console", "path", r.URL.Path, "error", err)
	}
	data := map[string]any{"Status": status, "Message": msg}
	if id := r.PathValue("id"); ids.Valid(ids.Delivery, id) && status != http.StatusNotFound {
		data["Back"] = "/admin/deliveries/" + id
	}
	c.render(w, r, status, "error", s, data)
}

// errReplayPending: a bulk replay was asked of PENDING deliveries.
var errReplayPending = errors.New("PENDING deliveries are not replayed")

// retryAdvice tells the operator how to send PENDING deliveries now.
func (c *Console) retryAdvice() string {
	if c.o.Retrier == nil {
		return "They are attempted again on their schedule."
	}
	return "To send them now, use Retry now: on a delivery's page, or for many at once on the deliveries list filtered to PENDING."
}

// inputError is a form or query field the console cannot use.
type inputError string

func (e inputError) Error() string { return string(e) }
