package signing_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/boomerang-dev/boomerang/signing"
)

func ExampleSigner_Sign() {
	s, err := signing.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// While rotating, sign with the old and the new secret: the header holds one
// signature per secret, and receivers holding either accept the webhook.
func ExampleNewSigner_rotation() {
	s, err := signing.NewSigner(
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // old
		"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", // new
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44=
}

// A receiver's HTTP handler: read the raw body, verify, then parse.
func ExampleVerify() {
	secret := os.Getenv("WEBHOOK_SECRET") // "whsec_..."
	http.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := signing.Verify(secret, r.Header, body); err != nil {
			http.Error(w, "invalid webhook", http.StatusUnauthorized)
			return
		}
		// The webhook is authentic and recent: handle body (JSON) here.
		w.WriteHeader(http.StatusNoContent)
	})
}

func ExampleVerifier_Verify() {
	v, err := signing.NewVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	// Pretend the webhook has just been sent (tests and replays only).
	v.Now = func() time.Time { return time.Unix(1614265330, 0) }

	h := http.Header{}
	h.Set("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("Webhook-Timestamp", strconv.Itoa(1614265330))
	h.Set("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

	fmt.Println(v.Verify(h, []byte(`{"test": 2432232314}`)))
	err = v.Verify(h, []byte(`{"test": 0}`))
	fmt.Println(errors.Is(err, signing.ErrNoMatch), err)
	// Output:
	// <nil>
	// true signing: no matching signature
}
