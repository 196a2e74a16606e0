package bolt12

import (
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/stretchr/testify/require"
)

// ldkLSPS1Offer is the offer in rust-lightning v0.2.5's
// lightning-liquidity/src/lsps1/msgs.rs tests: an offer on regtest with
// one blinded path, as an LDK node writes them.
const ldkLSPS1Offer = "lno1qgsqvgnwgcg35z6ee2h3yczraddm72xrfua9uve2rlrm9deu7xyfzrcgqvp3pwq2q3shxerxzzfqyxdxxkjqxfpt9tz94zj79m4n99kwjddq92uqryuwsu4nt0t3lthfq02jzqla96dtkf4rew8edxw0p85swe89wd8ldekdl5j262n76qyl2qgzajm08clzr74z6ssy0qlvvp9f5kvrxf27yz4pcy99jge69kxu8ttsqt8gw8jsk5397zvvdf4lfd52paf73thcg6xf57xmvtdrwny5mn2r4jw2d5jzalqrq537mmt6u9qpqytzzql6zemrme07jqqwtza76lldcj9wgc0ccd4d2w584cdcx6szsuupvy"

func TestDecodeLDKOffer(t *testing.T) {
	offer, err := DecodeOfferString(ldkLSPS1Offer)
	require.NoError(t, err)
	require.Equal(t, ldkLSPS1Offer, offer.String())
	require.NoError(t, offer.Check(testNow,
		*chaincfg.RegressionNetParams.GenesisHash))

	require.Equal(t, uint64(200888), *offer.Amount)
	require.Equal(t, "asdf", *offer.Description)
	require.Equal(t, uint64(1), *offer.QuantityMax)
	require.Equal(t, "03fa16763de5fe9000e58bbed7fedc48ae461f8c36ad53a87ae"+
		"1b836a028738161",
		hex.EncodeToString(offer.IssuerID.SerializeCompressed()))
	require.Len(t, offer.Paths, 1)
	require.Len(t, offer.Paths[0].Hops, 1)
	require.Equal(t, "0219a635a403242b2ac45a8a5e2eeb3296ce935a02ab801938e"+
		"872b35bd71faee9", hex.EncodeToString(
		offer.Paths[0].IntroNode.SerializeCompressed()))
}

// TestLDKStringRejections are the strings rust-lightning v0.2.5's
// offers/parse.rs tests reject, and why.
func TestLDKStringRejections(t *testing.T) {
	valid := "lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7" +
		"nz5yqcnygrfdej82um5wf5k2uckyypwa3eyt44h6txtxquqh7lz5djge4afgf" +
		"jn7k4rgrkuag0jsd5xvxg"
	_, err := DecodeOfferString(valid)
	require.NoError(t, err)

	tests := []struct {
		name string
		s    string
		want error
	}{
		{"lni prefix on an offer", "lni1" + valid[4:], ErrWrongPrefix},
		{"leading vertical tab", "\vlno1pqpzwyq2p32x2um5ypmx2cm5dae8x9" +
			"3pqthvwfzadd7jejes8q9lhc4rvjxd022zv5l44g6qah+\v\v\v\v82ru5r" +
			"dpnpj", ErrInvalidString},
		{"invalid character o", valid[:len(valid)-1] + "o",
			ErrInvalidString},
		{"trailing zero data", valid + "qqqqq", ErrMalformedTLV},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOfferString(tc.s)
			require.ErrorIs(t, err, tc.want)
		})
	}
}
