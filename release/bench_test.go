package release

import (
	"testing"
	"time"
)

func BenchmarkMintPathID(b *testing.B) {
	auth, err := NewAuthenticator(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	c := testClaim()
	b.ReportAllocs()
	for range b.N {
		auth.Mint(c)
	}
}

func BenchmarkVerifyPathID(b *testing.B) {
	auth, err := NewAuthenticator(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	c := testClaim()
	id := auth.Mint(c)
	now := c.ExpiresAt.Add(-time.Hour)
	b.ReportAllocs()
	for range b.N {
		if _, err := auth.Verify(id, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMintReleasePaths mints the default two paths for one HTLC, as
// holdd does for every hold.
func BenchmarkMintReleasePaths(b *testing.B) {
	auth, err := NewAuthenticator(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewMinter(auth, privKey(1).PubKey(), privKey(2).PubKey())
	if err != nil {
		b.Fatal(err)
	}
	c := testClaim()
	b.ReportAllocs()
	for range b.N {
		if _, err := m.Mint(c, 2); err != nil {
			b.Fatal(err)
		}
	}
}
