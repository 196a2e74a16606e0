//go:build tools

package holdd

import (
	_ "github.com/btcsuite/btcd/btcec/v2"
	_ "github.com/jessevdk/go-flags"
	_ "github.com/lightningnetwork/lightning-onion"
	_ "github.com/lightningnetwork/lnd/brontide"
	_ "github.com/lightningnetwork/lnd/keychain"
	_ "github.com/lightningnetwork/lnd/lnrpc"
	_ "github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	_ "github.com/lightningnetwork/lnd/lnrpc/signrpc"
	_ "github.com/lightningnetwork/lnd/lnwire"
	_ "github.com/lightningnetwork/lnd/macaroons"
	_ "github.com/lightningnetwork/lnd/record"
	_ "github.com/lightningnetwork/lnd/routing/route"
	_ "github.com/lightningnetwork/lnd/tlv"
	_ "github.com/sirupsen/logrus"
	_ "github.com/stretchr/testify/require"
	_ "google.golang.org/grpc"
	_ "gopkg.in/macaroon.v2"
	_ "modernc.org/sqlite"
)
