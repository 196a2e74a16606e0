package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Secret returns the secret stored under name, creating it with generate
// exactly once. The read, generate and insert run in one write transaction
// on the store's single connection, so concurrent callers and other
// processes all see the one stored value and generate is never called for a
// name that exists. generate must not call back into the Store (the
// connection is held while it runs) and must return a non-empty value.
func (s *Store) Secret(ctx context.Context, name string,
	generate func() ([]byte, error)) ([]byte, error) {

	if name == "" {
		return nil, fmt.Errorf("%w: empty secret name",
			ErrInvalidArgument)
	}

	var secret []byte
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			"SELECT value FROM secrets WHERE name = ?", name).
			Scan(&secret)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		case generate == nil:
			return fmt.Errorf("secret %q: %w", name, ErrNotFound)
		}

		v, err := generate()
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		if len(v) == 0 {
			return fmt.Errorf("%w: generated secret is empty",
				ErrInvalidArgument)
		}
		secret = append([]byte(nil), v...)
		_, err = tx.ExecContext(ctx,
			"INSERT INTO secrets (name, value) VALUES (?, ?)",
			name, secret)

		return err
	})
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}

	return secret, nil
}

// GetSetting returns the JSON value stored under name, or ErrNotFound.
func (s *Store) GetSetting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx,
		"SELECT value FROM settings WHERE name = ?", name).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("setting %q: %w", name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("setting %q: %w", name, err)
	}

	return v, nil
}

// PutSetting stores value, which must be valid JSON, under name, replacing
// any previous value.
func (s *Store) PutSetting(ctx context.Context, name string,
	value []byte) error {

	if name == "" || !json.Valid(value) {
		return fmt.Errorf("%w: setting %q needs a name and a JSON "+
			"value", ErrInvalidArgument, name)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO settings (name, value)
		VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
		name, value)
	if err != nil {
		return fmt.Errorf("store setting %q: %w", name, err)
	}

	return nil
}
