package recipient_test

import (
	"context"

	"github.com/holdd/holdd/recipient"
	"github.com/holdd/holdd/store"
)

// init gives the in-package tests a real store; see recipient.TestStore.
func init() {
	recipient.OpenTestStore = func(path string) (recipient.TestStore, error) {
		st, err := store.Open(context.Background(), path)
		if err != nil {
			return nil, err
		}

		return st, nil
	}
}
