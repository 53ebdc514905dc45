package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/boomerang-dev/boomerang/clients"
	"github.com/boomerang-dev/boomerang/ids"
	"github.com/boomerang-dev/boomerang/jobs"
	"github.com/boomerang-dev/boomerang/recovery"
	"github.com/boomerang-dev/boomerang/redisstore"
	"github.com/boomerang-dev/boomerang/webhooks"
	"github.com/redis/go-redis/v9"
)

// Example follows one job through the Store as the domain drives it: the
// API submits it (jobs.Service.Submit → CreateJob), a worker takes it from
// its partition's ready list (jobs.Runner → NextReady) and runs it
// (jobs.Service.Run → ClaimJob, then FinishJob, which creates its
// delivery), and the dispatcher sends the webhook (webhooks.Dispatcher →
// RecordAttempt). The admin API reads it back (GetDelivery).
func Example() {
	ctx := context.Background()
	// Any redis.UniversalClient: one node, Sentinel or a Redis Cluster.
	// Here an embedded Redis, so that the example runs anywhere.
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	store, err := redisstore.New(ctx, rdb, redisstore.Options{Partitions: 4, Retention: 7 * 24 * time.Hour, RecoverAfter: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	// One Store serves every domain package; cmd/boomerang wires it as
	// jobs.ServiceOptions.Store, the runner's jobs.ReadyQueue, the
	// webhooks.Dispatcher's store, clients.NewService's store and the
	// RateLimiter's buckets, and recovery.Sweeper.Store; store.Tags()
	// name the partitions' asynq queues (tasks.NewQueue, tasks.NewServer).
	var (
		_ jobs.Store      = store
		_ jobs.ReadyQueue = store
		_ webhooks.Store  = store
		_ clients.Store   = store
		_ clients.Buckets = store
		_ recovery.Store  = store
	)

	// Submit: the job's id carries its creation time and its partition.
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	job := jobs.Job{ID: ids.NewIn(ids.Request, now, 2), ClientID: "cli_01KJMM0000000000000000ACME", Type: "echo",
		Status: jobs.StatusAccepted, Payload: json.RawMessage(`{"n":1}`), CallbackURL: "https://example.com/hook",
		CreatedAt: now, UpdatedAt: now}
	if _, _, err := store.CreateJob(ctx, job, nil); err != nil {
		log.Fatal(err)
	}

	// Run: pop, claim under a lease, process, finish.
	id, err := store.NextReady(ctx, ids.Partition(job.ID), time.Second)
	if err != nil {
		log.Fatal(err)
	}
	running, err := store.ClaimJob(ctx, id, now, now.Add(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("claimed:", running.Status, "attempt", running.Attempts, "payload", string(running.Payload))

	done := now.Add(5 * time.Millisecond)
	running.Status, running.Result, running.UpdatedAt, running.CompletedAt = jobs.StatusCompleted, running.Payload, done, &done
	running.DeliveryID = jobs.DeliveryID(running.ID)
	body, err := jobs.WebhookBody(running)
	if err != nil {
		log.Fatal(err)
	}
	d, err := store.FinishJob(ctx, running, webhooks.Message{ID: running.DeliveryID, RequestID: running.ID, ClientID: running.ClientID,
		EventType: jobs.EventCompleted, URL: running.CallbackURL, Body: body})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("finished: delivery", d.Status)

	// Deliver: the first attempt, recorded.
	a := webhooks.Attempt{Number: 1, StartedAt: done, DurationMs: 3, URL: d.URL, StatusCode: 204, Outcome: webhooks.OutcomeDelivered}
	if err := store.RecordAttempt(ctx, d, a, webhooks.StatusDelivered); err != nil {
		log.Fatal(err)
	}
	got, err := store.GetDelivery(ctx, d.ID, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered:", got.Status, "after", got.Attempts, "attempt")
	fmt.Println(strings.ReplaceAll(string(got.Payload), job.ID, "req_…"))
	// Output:
	// claimed: PROCESSING attempt 1 payload {"n":1}
	// finished: delivery PENDING
	// delivered: DELIVERED after 1 attempt
	// {"type":"job.completed","timestamp":"2026-03-01T12:00:00.005Z","data":{"requestId":"req_…","type":"echo","status":"COMPLETED","result":{"n":1},"createdAt":"2026-03-01T12:00:00Z","completedAt":"2026-03-01T12:00:00.005Z"}}
}
