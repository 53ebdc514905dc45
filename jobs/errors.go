package jobs

import "errors"

// Errors of the work done outside Boomerang, decided with errors.Is. A
// *RefusedError answers to those that fit it.
var (
	// ErrExternal: the job is done by external workers, which claim it over
	// HTTP; a run of Boomerang's own only hands it back to them.
	ErrExternal = errors.New("job is done by external workers")
	// ErrLeaseLost: the worker's lease lapsed and the job went to another
	// claim (or back to the queue); the worker must drop it.
	ErrLeaseLost = errors.New("lease lost")
	// ErrCanceled and ErrExpired: the job was canceled, or its deadline
	// passed, while it ran.
	ErrCanceled = errors.New("job canceled")
	ErrExpired  = errors.New("job expired")
	// ErrTypeForbidden: a worker's key does not cover the job's type.
	ErrTypeForbidden = errors.New("job type not allowed for this worker")
	// ErrTokenInvalid: no job waits for this completion token.
	ErrTokenInvalid = errors.New("completion token invalid")
	// ErrTokenUsed: the job this token completes has ended already.
	ErrTokenUsed = errors.New("completion token already used")
)

// RefusedError is a write the store refused because the job is no longer
// held as the writer said: Status and Attempt are its state now, and
// Matched says whether the record held the writer's Field ("lid": its
// lease id, "th": its token's hash; "" when none was checked). It is
// always ErrFinished (the existing contract: someone else decides now),
// and also the one error of the list above that says why.
type RefusedError struct {
	Status  Status
	Attempt int
	Field   string
	Matched bool
}

func (e *RefusedError) Error() string {
	if err := e.reason(); err != nil {
		return err.Error() + " (job " + string(e.Status) + ")"
	}
	return "job held by another attempt or ended (" + string(e.Status) + ")"
}

// reason is the specific error, nil when ErrFinished alone says it.
func (e *RefusedError) reason() error {
	switch {
	case e.Status == StatusCanceled:
		return ErrCanceled
	case e.Status == StatusExpired:
		return ErrExpired
	case e.Field == "th" && !e.Matched:
		return ErrTokenInvalid
	case e.Field == "th":
		return ErrTokenUsed
	case e.Field == "lid":
		return ErrLeaseLost
	}
	return nil
}

// Is makes errors.Is see ErrFinished and the reason.
func (e *RefusedError) Is(target error) bool {
	return target == ErrFinished || (target != nil && target == e.reason())
}
