package redisstore

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// subscribe delivers the messages of a channel, and "" each time the
// subscription (re)starts, when messages may have been missed. It pings a
// connection quiet for subscriptionIdle and starts over when the ping goes
// unanswered (a half-open connection would keep it deaf). The channel
// closes when ctx ends.
func (s *Store) subscribe(ctx context.Context, channel string) <-chan string {
	out := make(chan string, 256)
	go func() {
		defer close(out)
		ps := s.rdb.Subscribe(ctx, channel)
		// Receive does not return when ctx ends (go-redis reads ignore
		// cancellation); closing the subscription makes it.
		stop := context.AfterFunc(ctx, func() { ps.Close() })
		defer func() { stop(); ps.Close() }()
		pinged := false
		for {
			msg, err := ps.ReceiveTimeout(ctx, subscriptionIdle)
			if ctx.Err() != nil {
				return
			}
			var payload string
			switch m := msg.(type) {
			case *redis.Subscription:
				payload = "" // (re)subscribed: anything may have happened meanwhile
			case *redis.Message:
				payload = m.Payload
			case *redis.Pong:
				pinged = false
				continue
			default:
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout() && !pinged:
					_ = ps.Ping(ctx)
					pinged = true
				case errors.As(err, &ne) && ne.Timeout():
					stop()
					ps.Close()
					ps = s.rdb.Subscribe(ctx, channel)
					stop = context.AfterFunc(ctx, func() { ps.Close() })
					pinged = false
				case err != nil:
					select { // Receive reconnects on the next call
					case <-time.After(time.Second):
					case <-ctx.Done():
						return
					}
				}
				continue
			}
			pinged = false
			select {
			case out <- payload:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// subscriptionIdle is how long a subscription may stay silent before it
// checks its connection with a ping.
const subscriptionIdle = 30 * time.Second
