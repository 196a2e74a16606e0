package bolt12

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// maxAllocPerByte bounds what a decoder may allocate per input byte. The
// worst case is a stream of the smallest records: each 3-byte record costs
// a Record (80 bytes, about 27 per input byte) in a slice that grows by
// doubling (up to 4x that, counting the arrays it outgrew), plus the
// private copy of the input: about 110.
const maxAllocPerByte = 128

// TestDecodeAllocationBound feeds every decoder the largest inputs of the
// shapes that cost the most per byte and checks that what it allocates
// stays linear in the input, under maxAllocPerByte.
func TestDecodeAllocationBound(t *testing.T) {
	// Odd experimental offer types, 6 bytes each (fe xxxxxxxx 00).
	var manyRecords []byte
	for typ := uint64(1_000_000_001); len(manyRecords)+6 <=
		MaxMessageSize; typ += 2 {

		manyRecords = append(manyRecords, NewRecord(typ, nil).raw...)
	}

	// One offer_paths record full of one-hop paths.
	var paths []byte
	p := testPath(10, 20)
	p.Hops = p.Hops[:1]
	one, err := p.Bytes()
	require.NoError(t, err)
	for len(paths)+len(one) < MaxMessageSize-8 {
		paths = append(paths, one...)
	}
	manyPaths := NewRecord(TypeOfferPaths, paths).raw

	// invoice_error: odd types 1, 3, ... in 2-4 byte records.
	var manyErrors []byte
	for typ := uint64(1); len(manyErrors)+4 <= MaxMessageSize; typ += 2 {
		manyErrors = append(manyErrors, NewRecord(typ, nil).raw...)
	}

	// A path whose enc_len claims 65535 bytes that are not there.
	lying := append(bytes.Clone(one[:33+33+1+33]), 0xff, 0xff)
	lyingPath := NewRecord(TypeOfferPaths, lying).raw

	inputs := map[string][]byte{
		"many records":   manyRecords,
		"many paths":     manyPaths,
		"many errors":    manyErrors,
		"lying enc_len":  lyingPath,
		"oversize input": make([]byte, 10*MaxMessageSize),
	}
	decoders := map[string]func([]byte) error{
		"offer": func(b []byte) error {
			_, err := DecodeOffer(b)
			return err
		},
		"invoice_request": func(b []byte) error {
			_, err := DecodeInvoiceRequest(b)
			return err
		},
		"invoice": func(b []byte) error {
			_, err := DecodeInvoice(b)
			return err
		},
		"static_invoice": func(b []byte) error {
			_, err := DecodeStaticInvoice(b)
			return err
		},
		"invoice_error": func(b []byte) error {
			_, err := DecodeInvoiceError(b)
			return err
		},
		"string": func(b []byte) error {
			_, _, err := DecodeString(EncodeString("lno", b))
			return err
		},
	}
	for in, b := range inputs {
		for dec, decode := range decoders {
			n := allocated(func() { _ = decode(b) })
			// The string form is 8/5 the bytes, and the encode
			// above is counted too.
			limit := uint64(maxAllocPerByte*min(len(b),
				4*MaxMessageSize)) + 128*1024
			require.LessOrEqual(t, n, limit, "%s on %s (%d bytes)",
				dec, in, len(b))
			t.Logf("%s on %s: %d bytes in, %d allocated", dec, in,
				len(b), n)
		}
	}
}
