package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/boomerang-dev/boomerang/jobs"
)

// A job type is a name, a Processor and a timeout. Errors marked with
// Permanent fail the job at once; other errors are retried.
func ExampleRegistry_Register() {
	r := jobs.NewRegistry()
	r.Register("echo", jobs.Echo, 30*time.Second)
	r.Register("upper", jobs.ProcessorFunc(func(ctx context.Context, in jobs.Input) (json.RawMessage, error) {
		var s string
		if err := json.Unmarshal(in.Payload, &s); err != nil {
			return nil, jobs.Permanent(fmt.Errorf("payload must be a JSON string: %w", err))
		}
		return json.Marshal(strings.ToUpper(s))
	}), 10*time.Second)

	typ, _ := r.Lookup("upper")
	out, err := typ.Processor.Process(context.Background(), jobs.Input{Payload: json.RawMessage(`"hello"`)})
	fmt.Println(string(out), err)
	_, err = typ.Processor.Process(context.Background(), jobs.Input{Payload: json.RawMessage(`42`)})
	fmt.Println("permanent:", jobs.IsPermanent(err))
	fmt.Println(r.Names(), typ.Timeout)
	// Output:
	// "HELLO" <nil>
	// permanent: true
	// [echo upper] 10s
}
