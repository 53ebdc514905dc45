package main

// The webhook receiver: verifies every signature, notes when each job's
// first webhook arrived, and counts bad, duplicate and malformed ones.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

type webhookRec struct {
	at          time.Time
	completedAt time.Time
}

type benchReceiver struct {
	srv      *http.Server
	url      string
	verifier *signing.Verifier // set before any job is submitted

	mu          sync.Mutex
	byRequest   map[string]webhookRec // first receipt per requestId
	seen        map[string]struct{}   // webhook-ids
	received    atomic.Int64          // distinct webhooks
	lastAt      atomic.Int64          // unix nanos of the latest distinct webhook
	sigFailures atomic.Int64
	duplicates  atomic.Int64
	malformed   atomic.Int64
}

func startReceiver() (*benchReceiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &benchReceiver{url: "http://" + l.Addr().String(), byRequest: map[string]webhookRec{}, seen: map[string]struct{}{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *benchReceiver) close() { _ = r.srv.Close() }

func (r *benchReceiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := r.verifier.Verify(req.Header, body); err != nil {
		r.sigFailures.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var msg struct {
		Data struct {
			RequestID   string    `json:"requestId"`
			CompletedAt time.Time `json:"completedAt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Data.RequestID == "" {
		r.malformed.Add(1)
		http.Error(w, "malformed", http.StatusBadRequest)
		return
	}
	r.record(req.Header.Get(signing.HeaderID), msg.Data.RequestID, webhookRec{at: at, completedAt: msg.Data.CompletedAt})
	w.WriteHeader(http.StatusNoContent)
}

// record notes a verified webhook, once per webhook-id.
func (r *benchReceiver) record(webhookID, requestID string, rec webhookRec) {
	r.mu.Lock()
	_, dup := r.seen[webhookID]
	if !dup {
		r.seen[webhookID] = struct{}{}
		r.byRequest[requestID] = rec
	}
	r.mu.Unlock()
	if dup {
		r.duplicates.Add(1)
		return
	}
	r.received.Add(1)
	r.lastAt.Store(rec.at.UnixNano())
}

func (r *benchReceiver) lookup(ids []string) map[string]webhookRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]webhookRec, len(ids))
	for _, id := range ids {
		if rec, ok := r.byRequest[id]; ok {
			out[id] = rec
		}
	}
	return out
}
