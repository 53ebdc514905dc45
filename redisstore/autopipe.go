package redisstore

import (
	"context"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// autoPipe sends the commands that concurrent callers hand it together, in
// one pipeline per round trip: while a pipeline is out, the commands that
// arrive queue, and the next pipeline takes them all. A lone command goes
// out at once, so a quiet service waits no longer than before; a busy one
// makes one write and one read where it made one of each per command, and
// so does Redis (docs/benchmarks.md measures it). At most flushers
// pipelines are out at a time; the goroutines that send them live only
// while there is something to send, so an idle Store runs none.
//
// A caller whose context ends stops waiting: its commands are withdrawn if
// no pipeline has taken them yet, and may have run if one has, as with any
// command sent before a timeout.
type autoPipe struct {
	rdb      redis.UniversalClient
	flushers int // pipelines out at a time
	// A pipeline takes no caller more once it holds maxCmds commands or
	// maxBytes bytes of arguments: a small call queued behind large ones
	// (a client's big payloads) waits for a bounded write, not for all.
	maxCmds, maxBytes int

	mu      sync.Mutex
	queue   []*pipeCall
	running int
}

// pipeCall is one caller's commands, sent in order in the same pipeline;
// done closes once their replies (or errors) are in.
type pipeCall struct {
	cmds  []redis.Cmder
	bytes int // of the commands' string arguments
	done  chan struct{}
}

func newAutoPipe(rdb redis.UniversalClient, flushers int) *autoPipe {
	return &autoPipe{rdb: rdb, flushers: flushers, maxCmds: 256, maxBytes: 1 << 20}
}

// argBytes is the size of cmds' string and byte-slice arguments, which
// carry all the bulk (payloads, results, attempt logs).
func argBytes(cmds []redis.Cmder) int {
	n := 0
	for _, c := range cmds {
		for _, a := range c.Args() {
			switch v := a.(type) {
			case string:
				n += len(v)
			case []byte:
				n += len(v)
			}
		}
	}
	return n
}

// newAutoPipes returns the Store's pipes: one for a single Redis (or a
// Sentinel's master), none for a Cluster. There a pipeline waits for the
// slowest master it touches (go-redis sends each master its part and waits
// for all), so a shared one would let a master that fails over hold back
// every partition; and with the calls spread over 16 partitions a pipe per
// partition batched little (3.3 round trips per job against 4.0) for the
// cost of a cluster pipeline per call. Calls go on their own there.
func newAutoPipes(rdb redis.UniversalClient) []*autoPipe {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return nil
	}
	return []*autoPipe{newAutoPipe(rdb, 4)}
}

// send sends cmds, in order, through the pipe, or as one pipeline of their
// own where there is none (a Cluster); read each command's Err. Its own
// error is ctx's, when ctx ended before the pipe sent them.
func (s *Store) send(ctx context.Context, cmds ...redis.Cmder) error {
	if len(s.pipes) > 0 {
		return s.pipes[0].do(ctx, cmds...)
	}
	if len(cmds) == 1 {
		_ = s.rdb.Process(ctx, cmds[0])
		return nil
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range cmds {
			_ = p.Process(ctx, c)
		}
		return nil
	})
	return nil
}

// do sends cmds and waits for their replies, which it leaves in the
// commands (read each one's Err). Its own error is ctx's: when ctx ended
// before the commands left the queue, they were not sent at all (as a
// direct call with an ended context is not); when it ended while they were
// out, they may have run (as with a timeout).
func (a *autoPipe) do(ctx context.Context, cmds ...redis.Cmder) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &pipeCall{cmds: cmds, bytes: argBytes(cmds), done: make(chan struct{})}
	a.mu.Lock()
	a.queue = append(a.queue, c)
	if a.running < a.flushers {
		a.running++
		go a.flush()
	}
	a.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		a.withdraw(c)
		return ctx.Err()
	}
}

// withdraw takes c out of the queue, if no pipeline has taken it yet.
func (a *autoPipe) withdraw(c *pipeCall) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i := slices.Index(a.queue, c); i >= 0 {
		a.queue = slices.Delete(a.queue, i, i+1)
	}
}

// flush sends what is queued, pipeline after pipeline, until the queue is
// empty.
func (a *autoPipe) flush() {
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.running--
			a.mu.Unlock()
			return
		}
		batch, n, size := a.queue, 0, 0
		for i, c := range a.queue {
			n, size = n+len(c.cmds), size+c.bytes
			if n >= a.maxCmds || size >= a.maxBytes {
				batch = a.queue[:i+1]
				break
			}
		}
		a.queue = append([]*pipeCall(nil), a.queue[len(batch):]...)
		a.mu.Unlock()
		a.exec(batch)
	}
}

// exec runs one pipeline. Its context is none of the callers': each stops
// waiting when its own ends. A failed round trip sets its error on every
// command (go-redis does), so each caller reads its own outcome.
func (a *autoPipe) exec(batch []*pipeCall) {
	ctx := context.Background()
	_, _ = a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range batch {
			for _, cmd := range c.cmds {
				_ = p.Process(ctx, cmd)
			}
		}
		return nil
	})
	for _, c := range batch {
		close(c.done)
	}
}

// evalSha is the EVALSHA command of sc, to send through the autoPipe.
func evalSha(ctx context.Context, sc *redis.Script, keys []string, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", sc.Hash(), len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	return redis.NewCmd(ctx, append(a, args...)...)
}

// runScript runs sc through the autoPipe (send), and on its own when Redis
// does not have it loaded yet (EVALSHA in a pipeline cannot fall back to
// EVAL).
func (s *Store) runScript(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd := evalSha(ctx, sc, keys, args)
	if err := s.send(ctx, cmd); err != nil {
		cmd.SetErr(err)
		return cmd
	}
	if isNoScript(cmd.Err()) {
		return sc.Run(ctx, s.rdb, keys, args...)
	}
	return cmd
}
