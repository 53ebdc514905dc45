package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseProgress(t *testing.T) {
	tests := []struct {
		line    string
		pct     float64
		msg     string
		wantsOK bool
	}{
		{"progress 42 encoding", 42, "encoding", true},
		{"progress 42", 42, "", true},
		{"progress 0 starting up now ", 0, "starting up now", true},
		{"progress 99.9 almost", 99.9, "almost", true},
		{"progress 100", 100, "", true},
		{"progress  7  two spaces", 7, "two spaces", true},
		{"progress 101 too far", 0, "", false},
		{"progress -1 back", 0, "", false},
		{"progress NaN", 0, "", false},
		{"progress half", 0, "", false},
		{"progress", 0, "", false},
		{"Progress 5", 0, "", false},
		{"  progress 5", 0, "", false},
		{"an error: progress 5", 0, "", false},
		{"progress 5 " + strings.Repeat("é", 600), 5, strings.Repeat("é", 512), true},
		{"progress 5 " + strings.Repeat("a", 1023) + "é", 5, strings.Repeat("a", 1023), true},
	}
	for _, tt := range tests {
		pct, msg, ok := parseProgress(tt.line)
		if ok != tt.wantsOK || pct != tt.pct || msg != tt.msg {
			t.Errorf("parseProgress(%q) = %v, %q, %v; want %v, %q, %v", tt.line, pct, msg, ok, tt.pct, tt.msg, tt.wantsOK)
		}
	}
}

func TestStderrSink(t *testing.T) {
	type progress struct {
		pct float64
		msg string
	}
	tests := []struct {
		name     string
		writes   []string
		want     []progress
		wantTail string
	}{
		{"lines split across writes", []string{"progr", "ess 10 a\nprogress 2", "0 b\n", "progress 30 c"},
			[]progress{{10, "a"}, {20, "b"}}, "progress 10 a\nprogress 20 b\nprogress 30 c"},
		{"CRLF", []string{"progress 5 windows\r\n"}, []progress{{5, "windows"}}, "progress 5 windows"},
		{"a very long line is no progress", []string{"progress 5 " + strings.Repeat("y", 3000) + "\nprogress 6 ok\n"},
			[]progress{{6, "ok"}}, "progress 5 " + strings.Repeat("y", 3000) + "\nprogress 6 ok"},
		{"the tail keeps the last 4 KiB from a whole character", []string{"start\n", strings.Repeat("é", 3000), "\nend\n"},
			nil, strings.Repeat("é", 2045) + "\nend"},
		{"invalid UTF-8 is replaced", []string{"bad \xff byte"}, nil, "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []progress
			s := &stderrSink{onProgress: func(p float64, m string) { got = append(got, progress{p, m}) }}
			for _, w := range tt.writes {
				if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("progress %v, want %v", got, tt.want)
			}
			tail := s.tail()
			if tail != tt.wantTail {
				t.Errorf("tail (%d bytes) %.80q…, want (%d bytes) %.80q…", len(tail), tail, len(tt.wantTail), tt.wantTail)
			}
			if len(tail) > stderrTail || !utf8.ValidString(tail) {
				t.Errorf("tail of %d bytes, valid UTF-8 %v; want at most %d, valid", len(tail), utf8.ValidString(tail), stderrTail)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name          string
		o             outcome
		wantResult    string
		wantCode      string
		wantRetryable bool
	}{
		{"JSON with space around it", outcome{stdout: []byte("  {\"a\":1}\n")}, `{"a":1}`, "", false},
		{"empty", outcome{stdout: []byte("\n")}, "null", "", false},
		{"not JSON", outcome{stdout: []byte("{")}, "", "invalid_result", false},
		{"a repeated key", outcome{stdout: []byte(`{"a":1,"a":2}`)}, "", "invalid_result", false},
		{"too large", outcome{stdout: []byte("[1]"), overflow: true}, "", "result_too_large", false},
		{"exit 75 though stdout is JSON", outcome{stdout: []byte("{}"), exitCode: 75}, "", "exit_75", true},
		{"exit 1", outcome{exitCode: 1}, "", "exit_1", false},
		{"a signal", outcome{exitCode: -1, signaled: "signal: killed"}, "", "killed", false},
		{"could not start", outcome{exitCode: -1, startErr: errors.New("fork: resource temporarily unavailable")}, "", "start_failed", true},
		{"a leftover held the pipes", outcome{stdout: []byte("{}"), orphaned: true}, "", "output_incomplete", false},
	}
	for _, tt := range tests {
		result, jobErr, retryable := judge(tt.o)
		code := ""
		if jobErr != nil {
			code = jobErr.Code
		}
		if string(result) != tt.wantResult || code != tt.wantCode || retryable != tt.wantRetryable {
			t.Errorf("%s: judge = %s, %q, %v; want %s, %q, %v", tt.name, result, code, retryable, tt.wantResult, tt.wantCode, tt.wantRetryable)
		}
	}
}
