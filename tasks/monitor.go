package tasks

import (
	"net/http"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// sharedClient hands asynqmon our Redis client instead of a new pool.
type sharedClient struct{ rdb redis.UniversalClient }

func (c sharedClient) MakeRedisClient() any { return c.rdb }

// Monitor is asynqmon, asynq's own web UI, read-only, for the pages
// under root (e.g. /admin/queues): every task of every queue, task by
// task. It shares rdb and must never be closed (that would close rdb).
// It answers whoever reaches it: serve it behind authentication.
func Monitor(rdb redis.UniversalClient, root string) http.Handler {
	return asynqmon.New(asynqmon.Options{RootPath: root, RedisConnOpt: sharedClient{rdb}, ReadOnly: true})
}
