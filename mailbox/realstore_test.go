package mailbox_test

import (
	"context"

	"github.com/holdd/holdd/mailbox"
	"github.com/holdd/holdd/store"
)

// init gives the in-package tests a real store; see mailbox.TestStore.
func init() {
	mailbox.OpenTestStore = func(path string) (mailbox.TestStore, error) {
		st, err := store.Open(context.Background(), path)
		if err != nil {
			return nil, err
		}

		return st, nil
	}
}
