package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// deferral is an error that asks for its task to run again after
// RetryAfter without counting as a failure (webhooks.DeferError): the task
// is not failing, it is waiting for its turn.
type deferral interface{ RetryAfter() time.Duration }

// ServerOptions configures the worker.
type ServerOptions struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	// TaskCheckInterval is how long an idle worker waits before polling the
	// queues again (asynq's default is 1 s); it bounds the pickup delay of a
	// job submitted to an idle worker.
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often scheduled retries are moved to
	// their queue (asynq's default is 5 s, too coarse for short retries).
	DelayedTaskCheckInterval time.Duration
	Logger                   *slog.Logger
}

// Server runs tasks against Handlers.
type Server struct {
	srv *asynq.Server
	h   Handlers
}

// NewServer returns a worker server over rdb, serving the given partition
// queues and the maintenance queue.
func NewServer(rdb redis.UniversalClient, partitions []string, o ServerOptions, h Handlers) *Server {
	queues := map[string]int{QueueMaintenance: maintenanceWeight}
	for _, p := range partitions {
		queues[p] = partitionWeight
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              o.Concurrency,
		Queues:                   queues,
		TaskCheckInterval:        o.TaskCheckInterval,
		DelayedTaskCheckInterval: o.DelayedTaskCheckInterval,
		ShutdownTimeout:          o.ShutdownTimeout,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			var d deferral
			if errors.As(err, &d) {
				return d.RetryAfter()
			}
			return min(time.Duration(1<<min(n, 6))*time.Second, time.Minute)
		},
		IsFailure: func(err error) bool {
			var d deferral
			return !errors.As(err, &d)
		},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			var d deferral
			if errors.As(err, &d) {
				log.DebugContext(ctx, "task deferred", "taskType", t.Type(), "taskId", id, "reason", err)
				return
			}
			n, _ := asynq.GetRetryCount(ctx)
			log.WarnContext(ctx, "task failed, asynq will retry it", "taskType", t.Type(), "taskId", id, "retry", n, "error", err)
		}),
		Logger:   asynqLogger{log},
		LogLevel: asynq.WarnLevel,
	})
	return &Server{srv: srv, h: h}
}

// Start runs the workers in the background.
func (s *Server) Start() error {
	if err := s.srv.Start(s.h.mux()); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	return nil
}

// Shutdown stops taking tasks, waits up to the shutdown timeout for running
// ones, and puts the rest back in their queues.
func (s *Server) Shutdown() { s.srv.Shutdown() }

// Ping checks the workers' Redis connection.
func (s *Server) Ping() error { return s.srv.Ping() }

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
