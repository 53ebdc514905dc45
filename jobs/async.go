package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/tracing"
)

// Async completion: a type's upstream accepts the work and finishes it
// later (a person approving, an asynchronous backend) by posting the
// outcome to the job's completion URL. The URL holds a token, the only
// credential: 256 random bits, stored as a SHA-256 only, good for one
// outcome of one attempt, dead once the job ends.

// HTTPAsync is an operator-configured job type whose upstream accepts the
// work: Boomerang POSTs {"requestId","type","payload","metadata",
// "completionUrl","deadline"}; a 2xx means accepted and the job stays
// PROCESSING until the completion URL is used (or its deadline passes). A
// 5xx or an unreachable upstream is retried; any other answer fails the
// job. Like HTTPForwarder, it trusts its upstream (no SSRF policy) and
// never follows a redirect.
type HTTPAsync struct {
	URL       string
	Client    *http.Client
	UserAgent string
}

// Process hands the job to the upstream.
func (h HTTPAsync) Process(ctx context.Context, in Input) (json.RawMessage, error) {
	var body object
	body.value("requestId", in.RequestID)
	body.value("type", in.Type)
	payload := in.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	body.raw("payload", payload) // byte for byte
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	body.value("metadata", in.Metadata)
	body.value("completionUrl", in.CompletionURL)
	body.value("deadline", in.Deadline)
	if body.err != nil {
		return nil, Permanent(body.err)
	}
	status, _, answer, err := postUpstream(ctx, h.Client, h.URL, h.UserAgent, body.close(), in.RequestID,
		fmt.Sprintf("%s:%d", in.RequestID, in.Attempt), 4096)
	if err != nil {
		return nil, err
	}
	switch {
	case status >= 200 && status < 300:
		return nil, nil
	case status >= 500:
		return nil, &Failure{Code: fmt.Sprintf("upstream_%d", status), Message: "upstream answered " + excerpt(status, answer)}
	}
	return nil, &Failure{Code: fmt.Sprintf("upstream_%d", status), Message: "upstream refused the job: " + excerpt(status, answer), Permanent: true}
}

// runAsync hands a claimed job of an async type to its upstream with a
// fresh completion token, and leaves it PROCESSING until the token is used
// or the job's deadline passes.
func (s *Service) runAsync(ctx context.Context, j Job, typ Type) error {
	token := ids.Body(j.ID) + "." + randomHex(32)
	tj := j
	tj.TokenHash = hashToken(token)
	if err := s.store.SaveToken(context.WithoutCancel(ctx), tj); err != nil {
		if errors.Is(err, ErrFinished) || errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, typ.Timeout)
	defer cancel()
	_, perr := typ.Processor.Process(tctx, Input{RequestID: j.ID, Type: j.Type, Payload: j.Payload, Metadata: j.Metadata,
		Attempt: j.Attempts, Deadline: j.Deadline, CompletionURL: s.publicURL + "/v1/completions/" + token})
	if perr != nil {
		return s.failed(ctx, j, typ, perr, errors.Is(tctx.Err(), context.DeadlineExceeded))
	}
	until := s.now().Add(s.maxDeadline)
	if j.Deadline != nil {
		until = *j.Deadline
	}
	j.UpdatedAt = s.now().UTC()
	err := s.store.AwaitJob(context.WithoutCancel(ctx), j, until)
	if err != nil && !errors.Is(err, ErrFinished) && !errors.Is(err, ErrNotFound) {
		// Completed already (a fast upstream), or the store failed: then
		// recovery runs it again, with a new token, after its lease.
		return err
	}
	s.log.InfoContext(ctx, "job accepted by its upstream; awaiting completion", "requestId", j.ID, "attempt", j.Attempts)
	return nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Completion is what an upstream posts to a completion URL: a result, or
// an error.
type Completion struct {
	Result json.RawMessage
	Error  *Error
}

// CompleteByToken records the outcome an upstream posted to a completion
// URL. A token that matches no waiting job is ErrTokenInvalid; one whose
// job has ended is ErrTokenUsed (or ErrCanceled, ErrExpired).
func (s *Service) CompleteByToken(ctx context.Context, token string, c Completion) (Job, error) {
	body, secret, ok := strings.Cut(token, ".")
	if !ok || len(secret) != 64 || !ids.Valid(ids.Request, ids.Request+body) {
		return Job{}, ErrTokenInvalid
	}
	j, err := s.store.GetJob(ctx, ids.Request+body)
	if errors.Is(err, ErrNotFound) {
		return Job{}, ErrTokenInvalid
	}
	if err != nil {
		return Job{}, err
	}
	ctx = tracing.ForJob(ctx, j.TraceParent) // its log lines in the job's trace
	status, result := StatusCompleted, c.Result
	if c.Error != nil {
		status, result = StatusFailed, nil
	} else if len(result) == 0 {
		result = json.RawMessage("null")
	}
	done := s.now().UTC()
	j.Status, j.Result, j.Error, j.LastError, j.LeaseID, j.TokenHash = status, result, c.Error, nil, "", hashToken(token)
	j.UpdatedAt, j.CompletedAt, j.DeliveryID = done, &done, DeliveryID(j.ID)
	d, err := s.record(ctx, j)
	if err != nil {
		return Job{}, err
	}
	s.deliverLater(context.WithoutCancel(ctx), d)
	s.log.InfoContext(ctx, "job completed through its completion URL", "requestId", j.ID, "status", status)
	j.Payload, j.TokenHash = nil, ""
	return j, nil
}
