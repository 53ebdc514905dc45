package webhooks

import (
	"strconv"

	"github.com/boomerang-dev/boomerang/signing"
)

// RequestHeaders are the headers an attempt sends, with the signature
// redacted: signatures are not secrets, but nothing gains from keeping them.
func RequestHeaders(d Delivery, ts int64, userAgent string, sigs int) map[string]string {
	redacted := "v1,<redacted>"
	if sigs > 1 {
		redacted = strconv.Itoa(sigs) + " × v1,<redacted>"
	}
	return map[string]string{
		"Content-Type":          "application/json",
		"Content-Length":        strconv.Itoa(len(d.Payload)),
		"User-Agent":            userAgent,
		signing.HeaderID:        d.ID,
		signing.HeaderTimestamp: strconv.FormatInt(ts, 10),
		signing.HeaderSignature: redacted,
	}
}
