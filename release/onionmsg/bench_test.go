package onionmsg

import (
	"testing"

	"github.com/lightningnetwork/lnd/record"
	"github.com/stretchr/testify/require"
)

// BenchmarkPeel peels the final hop of a release-shaped message, the work
// holdd does for every release_held_htlc.
func BenchmarkPeel(b *testing.B) {
	f := newFixture(b)
	atA, err := peelerFor(f.a).Peel(f.msg)
	require.NoError(b, err)
	peeler := peelerFor(f.b)

	b.ReportAllocs()
	for b.Loop() {
		if _, err := peeler.Peel(atA.NextMessage); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildBlindedPath mints a padded two-hop release path.
func BenchmarkBuildBlindedPath(b *testing.B) {
	lnd, holdd := testKey(1), testKey(2)
	session := testKey(3)
	pathID := make([]byte, 48)
	hops := []Hop{
		{NodeID: lnd.PubKey(), Data: forwardTo(holdd.PubKey())},
		{NodeID: holdd.PubKey(),
			Data: record.NewFinalHopBlindedRouteData(nil, pathID)},
	}

	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildBlindedPath(session, hops, true); err != nil {
			b.Fatal(err)
		}
	}
}
