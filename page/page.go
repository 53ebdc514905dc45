// Package page holds what every listing of the API shares: its cursors are
// opaque strings that only the store makes, and ErrBadCursor is the one
// error a made-up cursor gets, whichever store read it.
package page

import "errors"

// ErrBadCursor is a cursor no listing returned.
var ErrBadCursor = errors.New("malformed cursor")
