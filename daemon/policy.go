package daemon

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/holdd/holdd/holdrpc"
	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/store"
)

// policySetting is the store setting that holds a policy set through the
// API; JSON null means none.
const policySetting = "policy"

// policyStore persists API-set policies in the store, in holdrpc's JSON
// form so that the file stays readable across engine changes.
type policyStore struct {
	db *store.Store
}

// SavePolicy persists p, or clears the persisted policy when p is nil.
func (s policyStore) SavePolicy(ctx context.Context, p *plugin.Policy) error {
	if p == nil {
		return s.db.PutSetting(ctx, policySetting, []byte("null"))
	}
	raw, err := json.Marshal(holdrpc.MarshalPolicy(*p))
	if err != nil {
		return err
	}
	return s.db.PutSetting(ctx, policySetting, raw)
}

// load returns the persisted policy, if any.
func (s policyStore) load(ctx context.Context) (*plugin.Policy, error) {
	raw, err := s.db.GetSetting(ctx, policySetting)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var rp *holdrpc.Policy
	if err := json.Unmarshal(raw, &rp); err != nil {
		return nil, err
	}
	if rp == nil {
		return nil, nil
	}
	p := holdrpc.UnmarshalPolicy(rp)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}
