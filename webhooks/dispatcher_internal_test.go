package webhooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDispatcherDefaults(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{})
	if d.now == nil || d.log == nil {
		t.Fatalf("NewDispatcher(zero options): now set %v, log %v, want defaults", d.now != nil, d.log)
	}
	if got := d.now(); time.Since(got) > time.Minute || time.Until(got) > time.Minute {
		t.Errorf("default Now() = %v, want about time.Now()", got)
	}
	if d.timeout != 15*time.Second {
		t.Errorf("default timeout = %v, want 15s", d.timeout)
	}
	if d.client.CheckRedirect == nil {
		t.Errorf("client.CheckRedirect = nil, want redirects refused")
	}
}

func TestDeferError(t *testing.T) {
	until := time.Now().Add(time.Hour)
	tests := []struct {
		reason    string
		wantEarly bool
	}{
		{DeferHostBusy, false},
		{DeferEndpointBusy, false},
		{DeferHostOpen, false},
		{DeferEndpointOpen, false},
		{deferNotDue, true},
	}
	for _, tt := range tests {
		e := &DeferError{Until: until, Reason: tt.reason, Detail: "why"}
		if got := errors.Is(e, ErrEarly); got != tt.wantEarly {
			t.Errorf("errors.Is(DeferError{%s}, ErrEarly) = %v, want %v", tt.reason, got, tt.wantEarly)
		}
		if !strings.Contains(e.Error(), tt.reason) || !strings.Contains(e.Error(), "why") {
			t.Errorf("DeferError{%s}.Error() = %q, want the reason and the detail", tt.reason, e.Error())
		}
		// A second past Until, so that whole-second task queues never run it early.
		if got := e.RetryAfter(); got <= time.Hour || got > time.Hour+time.Second {
			t.Errorf("DeferError{Until: now+1h}.RetryAfter() = %v, want in (1h, 1h1s]", got)
		}
	}
	past := &DeferError{Until: time.Now().Add(-time.Hour), Reason: DeferHostBusy}
	if got := past.RetryAfter(); got != time.Second {
		t.Errorf("DeferError{Until: an hour ago}.RetryAfter() = %v, want 1s", got)
	}
}
