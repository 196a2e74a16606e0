package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/release/onionmsg"
	sphinx "github.com/lightningnetwork/lightning-onion"
	"github.com/stretchr/testify/require"
)

func decodeKey(b byte) *btcec.PrivateKey {
	k, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func decodePath(first byte) *onionmsg.BlindedPath {
	return &onionmsg.BlindedPath{
		IntroNode: decodeKey(first).PubKey(),
		PathKey:   decodeKey(first + 1).PubKey(),
		Hops: []*sphinx.BlindedHopInfo{{
			BlindedNodePub: decodeKey(first + 2).PubKey(),
			CipherText:     bytes.Repeat([]byte{first}, 24),
		}},
	}
}

var regtestChain = *chaincfg.RegressionNetParams.GenesisHash

// decodeFixtures builds an offer, an invoice request for it and a static
// invoice for it, all for regtest and valid at the harness clock.
func decodeFixtures(t *testing.T, now time.Time) (*bolt12.Offer,
	*bolt12.InvoiceRequest, *bolt12.StaticInvoice) {

	t.Helper()
	desc, issuer := "coffee", "holdd"
	offer, err := bolt12.NewOffer(bolt12.OfferFields{
		Chains:      []chainhash.Hash{regtestChain},
		Description: &desc,
		Issuer:      &issuer,
		Paths:       []*onionmsg.BlindedPath{decodePath(10)},
		IssuerID:    decodeKey(3).PubKey(),
	}, bolt12.NewRecord(1_000_000_001, []byte{0xab}))
	require.NoError(t, err)

	amount := uint64(21_000)
	ir, err := bolt12.NewInvoiceRequest(offer, bolt12.InvoiceRequestParams{
		PayerKey: decodeKey(7),
		Metadata: []byte{1, 2, 3, 4},
		Chain:    &regtestChain,
		Amount:   &amount,
	})
	require.NoError(t, err)

	si, err := bolt12.NewStaticInvoice(offer, bolt12.StaticInvoiceParams{
		InvoiceParams: bolt12.InvoiceParams{
			SigningKey: decodeKey(3),
			Paths: []bolt12.PaymentPath{{
				Path: decodePath(20),
				PayInfo: bolt12.BlindedPayInfo{
					FeeBaseMsat:     1000,
					CltvExpiryDelta: 144,
					HtlcMaximumMsat: 1_000_000,
				},
			}},
			CreatedAt: now,
		},
		MessagePaths: []*onionmsg.BlindedPath{
			decodePath(30), decodePath(40),
		},
	})
	require.NoError(t, err)
	return offer, ir, si
}

func runDecode(t *testing.T, h *harness, arg string) map[string]any {
	t.Helper()
	out, err := h.run("decode", arg)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &m), out)
	return m
}

func TestDecodeBuiltMessages(t *testing.T) {
	h := newHarness(t, &fakeHold{})
	offer, ir, si := decodeFixtures(t, h.clock.Now())
	offerID := offer.ID()
	wantID := hex.EncodeToString(offerID[:])

	// The offer, as a string and as hex.
	for _, in := range []string{offer.String(),
		hex.EncodeToString(offer.Encode())} {

		m := runDecode(t, h, in)
		require.Equal(t, "offer", m["type"])
		require.Equal(t, true, m["valid"])
		require.NotContains(t, m, "reason")
		require.Equal(t, wantID, m["offer_id"])
		require.Equal(t, "coffee", m["offer_description"])
		require.Equal(t, "holdd", m["offer_issuer"])
		require.Equal(t, []any{regtestChain.String()}, m["offer_chains"])
		require.Equal(t, hex.EncodeToString(
			decodeKey(3).PubKey().SerializeCompressed()),
			m["offer_issuer_id"])
		require.Len(t, m["offer_paths"], 1)
		require.Equal(t, []any{map[string]any{
			"type": float64(1_000_000_001), "value": "ab",
		}}, m["unknown_fields"])
	}

	// The invoice request.
	for _, in := range []string{ir.String(),
		hex.EncodeToString(ir.Encode())} {

		m := runDecode(t, h, in)
		require.Equal(t, "invoice_request", m["type"])
		require.Equal(t, true, m["valid"], m["reason"])
		require.Equal(t, wantID, m["offer_id"])
		require.Equal(t, float64(21_000), m["invreq_amount"])
		require.Equal(t, "01020304", m["invreq_metadata"])
		require.Equal(t, hex.EncodeToString(
			decodeKey(7).PubKey().SerializeCompressed()),
			m["invreq_payer_id"])
		require.Equal(t, hex.EncodeToString(ir.Signature),
			m["signature"])
	}

	// The static invoice, as an lni string and as hex.
	for _, in := range []string{si.String(),
		hex.EncodeToString(si.Encode())} {

		m := runDecode(t, h, in)
		require.Equal(t, "static_invoice", m["type"])
		require.Equal(t, true, m["valid"], m["reason"])
		require.Equal(t, wantID, m["offer_id"])
		require.Len(t, m["static_invoice_message_paths"], 2)
		require.Equal(t, float64(236),
			m["static_invoice_message_paths_type"])
		require.Equal(t, float64(h.clock.Now().Unix()),
			m["invoice_created_at"])
		require.Equal(t, float64(h.clock.Now().Unix()+14*24*3600),
			m["expires_at"])
		require.NotContains(t, m, "invoice_payment_hash")
		require.NotContains(t, m, "invoice_amount")
		pay := m["invoice_blindedpay"].([]any)[0].(map[string]any)
		require.Equal(t, float64(144), pay["cltv_expiry_delta"])
	}
}

// flipInValue flips one bit inside the value of the record of type typ.
func flipInValue(t *testing.T, records []bolt12.Record, typ uint64) []byte {
	t.Helper()
	var out []byte
	found := false
	for _, r := range records {
		b := r.Bytes()
		if r.Type == typ {
			b[len(b)-1] ^= 0x01
			found = true
		}
		out = append(out, b...)
	}
	require.True(t, found)
	return out
}

func TestDecodeFlippedByteIsInvalid(t *testing.T) {
	h := newHarness(t, &fakeHold{})
	_, ir, si := decodeFixtures(t, h.clock.Now())

	// A changed description ("coffed") still decodes, but the
	// signature no longer verifies.
	for name, b := range map[string][]byte{
		"invoice_request": flipInValue(t, ir.Records(), 10),
		"static_invoice":  flipInValue(t, si.Records(), 10),
	} {
		m := runDecode(t, h, hex.EncodeToString(b))
		require.Equal(t, name, m["type"])
		require.Equal(t, false, m["valid"])
		require.Contains(t, m["reason"], "bad signature")
		require.Equal(t, "coffed", m["offer_description"])
	}
}

func TestDecodeContextChecks(t *testing.T) {
	h := newHarness(t, &fakeHold{})
	_, _, si := decodeFixtures(t, h.clock.Now())

	// Two weeks and a second later the static invoice has expired.
	h.clock.SetTime(h.clock.Now().Add(14*24*time.Hour + time.Second))
	m := runDecode(t, h, si.String())
	require.Equal(t, false, m["valid"])
	require.Contains(t, m["reason"], "expired")

	// On mainnet a regtest offer is for the wrong chain (the later
	// --network wins over the harness's regtest).
	h.clock.SetTime(h.clock.Now().Add(-14 * 24 * time.Hour))
	out, err := h.run("--network", "mainnet", "decode", si.String())
	require.NoError(t, err)
	require.Contains(t, out, `"valid": false`)
	require.Contains(t, out, "wrong chain")
}

func TestDecodeBadInput(t *testing.T) {
	h := newHarness(t, &fakeHold{})
	offer, ir, _ := decodeFixtures(t, h.clock.Now())

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no argument", nil, "usage"},
		{"two arguments", []string{"a", "b"}, "usage"},
		{"not bech32", []string{"lno1b"}, "not bech32"},
		{"odd hex", []string{"abc"}, "not hex"},
		{"wrong prefix", []string{"lnx1" + offer.String()[4:]},
			"prefix"},
		{"truncated TLV", []string{"0a05414c49"}, "malformed TLV"},
		{"invoice request without payer id", []string{
			hex.EncodeToString(dropRecord(ir.Records(), 88))},
			"missing field: invreq_payer_id"},
		{"offer with unknown even type", []string{
			hex.EncodeToString(insertBefore(offer.Records(),
				1_000_000_001, []byte{0x4c, 0x00}))},
			"unknown even TLV type: type 76"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.run(append([]string{"decode"},
				tc.args...)...)
			require.Error(t, err)
			require.Empty(t, out)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func dropRecord(records []bolt12.Record, typ uint64) []byte {
	var out []byte
	for _, r := range records {
		if r.Type != typ {
			out = append(out, r.Bytes()...)
		}
	}
	return out
}

// insertBefore encodes records with raw inserted before the record of type
// typ.
func insertBefore(records []bolt12.Record, typ uint64, raw []byte) []byte {
	var out []byte
	for _, r := range records {
		if r.Type == typ {
			out = append(out, raw...)
		}
		out = append(out, r.Bytes()...)
	}
	return out
}
