package apiclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ProblemBase starts the type URI of every problem Boomerang answers with.
const ProblemBase = "https://boomerang.dev/problems/"

// Problem slugs a caller acts on (docs/problems.md lists all of them).
const (
	// A worker must stop: drop the job, do not report it.
	SlugLeaseLost   = "lease-lost"
	SlugJobCanceled = "job-canceled"
	SlugJobExpired  = "job-expired"

	SlugJobFinal            = "job-final" // cancel of a job already final
	SlugNotFound            = "not-found"
	SlugUnauthorized        = "unauthorized"
	SlugWorkerTypeForbidden = "worker-type-forbidden"
)

// Problem is an RFC 9457 problem detail: the error of every non-2xx answer.
// A body that is not a problem (a proxy's HTML page, say) still gives one,
// with the HTTP status, its text as Title and the start of the body as Detail.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"` // always the HTTP status of the answer
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError names one field (or parameter, or header) at fault.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Slug is the last segment of the problem type, e.g. "lease-lost"; empty
// when the answer gave no type (or "about:blank").
func (p *Problem) Slug() string {
	t := strings.TrimPrefix(p.Type, ProblemBase)
	if t == "" || t == "about:blank" {
		return ""
	}
	return t[strings.LastIndex(t, "/")+1:]
}

// Error reads like "409 lease-lost: the lease was given to another worker".
func (p *Problem) Error() string {
	name := p.Slug()
	if name == "" {
		name = http.StatusText(p.Status)
	}
	s := fmt.Sprintf("%d %s", p.Status, name)
	switch {
	case p.Detail != "":
		s += ": " + p.Detail
	case p.Title != "":
		s += ": " + p.Title
	}
	return s
}

// ProblemSlug returns the slug of the *Problem in err's chain, or "" if there
// is none (a network error, say).
func ProblemSlug(err error) string {
	var p *Problem
	if errors.As(err, &p) {
		return p.Slug()
	}
	return ""
}

// maxProblem bounds the body of an error answer read into memory.
const maxProblem = 64 << 10

// readProblem turns a non-2xx answer into a *Problem.
func readProblem(resp *http.Response) *Problem {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblem))
	p := &Problem{}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	isJSON := mt == "application/problem+json" || mt == "application/json"
	if !isJSON || json.Unmarshal(raw, p) != nil || (p.Type == "" && p.Title == "") {
		p = &Problem{Title: http.StatusText(resp.StatusCode), Detail: snippet(raw)}
	}
	p.Status = resp.StatusCode
	return p
}

// snippet is the start of a body that is not a problem, on one line.
func snippet(raw []byte) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
