// Package faults holds Boomerang's fault-injection tests; it has no code of
// its own. Each test builds the real service binary once (TestMain), runs it
// as a subprocess against a real redis-server, and breaks something on
// purpose: it SIGKILLs workers mid-run, SIGKILLs Redis under load, answers
// webhooks with errors, resets and hangs, SIGTERMs the service with work in
// flight, floods one callback host, and lets retention expire 100 000 jobs.
// Every test then checks the promise of the service: each job that got a 202
// is delivered at least once, duplicates carry the same webhook-id, and the
// attempt log tells the truth. Numbers are reported with t.Logf and collected
// in docs/reliability.md.
package faults
