package store

import "errors"

var (
	// ErrNotFound is returned when the requested record does not exist.
	ErrNotFound = errors.New("not found")

	// ErrSchemaTooNew is returned by Open for a database whose schema was
	// written by a newer holdd than this binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")

	// ErrInvalidArgument is returned for a record or argument the store
	// refuses to write (unknown state, zero required time, non-JSON setting).
	ErrInvalidArgument = errors.New("invalid argument")
)

// notFoundError is a missing record: it matches ErrNotFound and the sentinel
// of the domain package that owns the record (plugin.ErrUnknownHTLC,
// mailbox.ErrNotRegistered, recipient.ErrUnknownPath), so callers test for it
// with errors.Is without importing store.
type notFoundError struct {
	domain error
}

// notFound returns the not-found error for a record owned by the package
// whose sentinel is domain.
func notFound(domain error) error {
	return &notFoundError{domain: domain}
}

// Error implements error.
func (e *notFoundError) Error() string {
	return e.domain.Error()
}

// Unwrap makes errors.Is true for both ErrNotFound and the domain sentinel.
func (e *notFoundError) Unwrap() []error {
	return []error{e.domain, ErrNotFound}
}
