package plugin_test

import (
	"context"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/store"
)

// init gives the in-package tests a real store; see plugin.TestStore.
func init() {
	plugin.OpenTestStore = func(path string) (plugin.TestStore, error) {
		st, err := store.Open(context.Background(), path)
		if err != nil {
			return nil, err
		}

		return st, nil
	}
}
