package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/holdd/holdd/release"
	"github.com/holdd/holdd/rpcclient"
	"github.com/holdd/holdd/store"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/sirupsen/logrus"
)

// loadNodeKey returns holdd's peer-link node key, created on first start.
func loadNodeKey(ctx context.Context, db *store.Store) (*btcec.PrivateKey,
	error) {

	raw, err := db.Secret(ctx, nodeKeySecret, func() ([]byte, error) {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, err
		}
		return k.Serialize(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if len(raw) != btcec.PrivKeyBytesLen {
		return nil, fmt.Errorf("stored node key has %d bytes", len(raw))
	}
	key, _ := btcec.PrivKeyFromBytes(raw)
	return key, nil
}

func randomSecret() ([]byte, error) {
	b := make([]byte, release.SecretLen)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, err
	}
	return b, nil
}

// errNoRequireInterceptor is returned when lnd reports that it runs without
// requireinterceptor: then a dropped interceptor stream makes lnd resume
// every held HTLC.
var errNoRequireInterceptor = errors.New("lnd runs without " +
	"requireinterceptor: if holdd's interceptor stream drops, lnd " +
	"releases every held HTLC; add requireinterceptor=true to lnd.conf")

// readLndConfig returns lnd's flattened config, or nil when the macaroon
// does not allow GetDebugInfo.
func readLndConfig(ctx context.Context, lnd *rpcclient.Client,
	log logrus.FieldLogger) map[string]string {

	resp, err := lnd.Lightning.GetDebugInfo(ctx,
		&lnrpc.GetDebugInfoRequest{})
	if err != nil {
		log.Warnf("Cannot read lnd's config (GetDebugInfo: %v); holdd "+
			"cannot check requireinterceptor and the onion-message "+
			"settings", err)
		return nil
	}
	return resp.Config
}

// checkRequireInterceptor refuses an lnd that reports requireinterceptor
// off and warns when it cannot tell.
func checkRequireInterceptor(lndConfig map[string]string,
	log logrus.FieldLogger) error {

	if lndConfig == nil {
		log.Warnf("Make sure lnd runs with requireinterceptor=true")
		return nil
	}
	for k, v := range lndConfig {
		if strings.EqualFold(lastPart(k), "requireinterceptor") {
			if v != "true" {
				return errNoRequireInterceptor
			}
			log.Infof("lnd runs with requireinterceptor")
			return nil
		}
	}
	log.Warnf("lnd did not report requireinterceptor; make sure lnd " +
		"runs with requireinterceptor=true")
	return nil
}

func lastPart(k string) string {
	if i := strings.LastIndexAny(k, ".:"); i >= 0 {
		return k[i+1:]
	}
	return k
}
