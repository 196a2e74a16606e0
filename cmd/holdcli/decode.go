package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/holdd/holdd/bolt12"
	"github.com/holdd/holdd/release/onionmsg"
	"github.com/urfave/cli"
)

// errDecode marks input that is not a BOLT 12 message holdcli can read.
var errDecode = errors.New("decode")

func decodeCommand(e *env) cli.Command {
	return cli.Command{
		Name:      "decode",
		Usage:     "Decode a BOLT 12 offer, invoice request or invoice.",
		ArgsUsage: "<lno/lnr/lni string or hex>",
		Description: "Decodes an offer (lno), invoice request (lnr), " +
			"invoice or static invoice (lni), given as a bolt12 " +
			"string or as the hex of its TLV stream (the type is " +
			"then told from the fields it carries), checks it as a " +
			"BOLT 12 reader must, verifies its signature, and " +
			"prints every field by its spec name with the offer id " +
			"(LDK's). \"valid\" is false, with the \"reason\", when " +
			"the signature does not verify, the message has " +
			"expired, or it is not for --network's chain. Input " +
			"that does not decode is an error. Works offline; " +
			"holdd is not contacted.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("%w: decode takes one "+
					"argument, the string or hex", errUsage)
			}
			chain, err := networkChain(c.GlobalString("network"))
			if err != nil {
				return err
			}
			view, err := decodeBolt12(c.Args().First(), chain, e)
			if err != nil {
				return err
			}
			compact, err := json.Marshal(view)
			if err != nil {
				return err
			}
			return printIndented(e.out, compact)
		},
	}
}

// networkChain is the BOLT 12 chain hash of a holdcli --network.
func networkChain(network string) (chainhash.Hash, error) {
	chain, err := bolt12.NetworkChain(network)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	return chain, nil
}

// decodeBolt12 decodes s (a bolt12 string or hex) into its JSON view.
func decodeBolt12(s string, chain chainhash.Hash, e *env) (*bolt12View,
	error) {

	s = strings.TrimSpace(s)
	var (
		b    []byte
		kind bolt12.Kind
	)
	if raw, err := hex.DecodeString(s); err == nil && len(raw) > 0 {
		b = raw
	} else {
		hrp, data, err := bolt12.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: not hex, and not a bolt12 "+
				"string: %w", errDecode, err)
		}
		var ok bool
		if kind, ok = bolt12.KindOfPrefix(hrp); !ok {
			return nil, fmt.Errorf("%w: prefix %q is not lno, lnr "+
				"or lni", errDecode, hrp)
		}
		b = data
	}
	detected, err := bolt12.DetectKind(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDecode, err)
	}
	switch {
	case kind == "":
		kind = detected
	// An lni string is an invoice or a static invoice.
	case kind == bolt12.KindInvoice:
		if detected == bolt12.KindStaticInvoice {
			kind = detected
		}
	}

	now := e.clock.Now()
	v := &bolt12View{Type: string(kind)}
	var (
		sigErr, checkErr error
		records          []bolt12.Record
	)
	skip := bolt12.SkipSignatureCheck()
	switch kind {
	case bolt12.KindOffer:
		o, err := bolt12.DecodeOffer(b)
		if err != nil {
			return nil, fmt.Errorf("%w: offer: %w", errDecode, err)
		}
		id := o.ID()
		v.OfferID = hex.EncodeToString(id[:])
		v.setOffer(&o.OfferFields)
		checkErr = o.Check(now, chain)
		records = o.Records()

	case bolt12.KindInvoiceRequest:
		ir, err := bolt12.DecodeInvoiceRequest(b, skip)
		if err != nil {
			return nil, fmt.Errorf("%w: invoice_request: %w",
				errDecode, err)
		}
		v.setOfferID(ir.OfferID())
		v.setOffer(&ir.Offer)
		v.setRequest(&ir.Request)
		v.Signature = hex.EncodeToString(ir.Signature)
		sigErr = ir.VerifySignature()
		checkErr = ir.Check(now, chain)
		records = ir.Records()

	case bolt12.KindInvoice:
		inv, err := bolt12.DecodeInvoice(b, skip)
		if err != nil {
			return nil, fmt.Errorf("%w: invoice: %w", errDecode,
				err)
		}
		v.setOfferID(inv.OfferID())
		v.setOffer(&inv.Offer)
		v.setRequest(&inv.Request)
		v.setInvoice(&inv.Invoice)
		v.ExpiresAt = ptrTo(inv.ExpiresAt())
		v.Signature = hex.EncodeToString(inv.Signature)
		sigErr = inv.VerifySignature()
		checkErr = inv.Check(now, chain)
		records = inv.Records()

	case bolt12.KindStaticInvoice:
		si, err := bolt12.DecodeStaticInvoice(b, skip)
		if err != nil {
			return nil, fmt.Errorf("%w: static_invoice: %w",
				errDecode, err)
		}
		v.setOfferID(si.OfferID())
		v.setOffer(&si.Offer)
		v.setInvoice(&si.Invoice)
		v.ExpiresAt = ptrTo(si.ExpiresAt())
		v.Signature = hex.EncodeToString(si.Signature)
		sigErr = si.VerifySignature()
		checkErr = si.Check(now, chain)
		records = si.Records()
	}
	v.setUnknown(records)

	v.Valid = true
	for _, err := range []error{sigErr, checkErr} {
		if err != nil {
			v.Valid = false
			v.Reason = err.Error()
			break
		}
	}
	return v, nil
}

func ptrTo[T any](v T) *T { return &v }

// bolt12View is decode's output: every field by its BOLT 12 name.
type bolt12View struct {
	Type    string `json:"type"`
	Valid   bool   `json:"valid"`
	Reason  string `json:"reason,omitempty"`
	OfferID string `json:"offer_id,omitempty"`

	OfferChains         []string   `json:"offer_chains,omitempty"`
	OfferMetadata       *string    `json:"offer_metadata,omitempty"`
	OfferCurrency       *string    `json:"offer_currency,omitempty"`
	OfferAmount         *uint64    `json:"offer_amount,omitempty"`
	OfferDescription    *string    `json:"offer_description,omitempty"`
	OfferFeatures       *string    `json:"offer_features,omitempty"`
	OfferAbsoluteExpiry *uint64    `json:"offer_absolute_expiry,omitempty"`
	OfferPaths          []pathView `json:"offer_paths,omitempty"`
	OfferIssuer         *string    `json:"offer_issuer,omitempty"`
	OfferQuantityMax    *uint64    `json:"offer_quantity_max,omitempty"`
	OfferIssuerID       string     `json:"offer_issuer_id,omitempty"`

	InvreqMetadata   *string    `json:"invreq_metadata,omitempty"`
	InvreqChain      string     `json:"invreq_chain,omitempty"`
	InvreqAmount     *uint64    `json:"invreq_amount,omitempty"`
	InvreqFeatures   *string    `json:"invreq_features,omitempty"`
	InvreqQuantity   *uint64    `json:"invreq_quantity,omitempty"`
	InvreqPayerID    string     `json:"invreq_payer_id,omitempty"`
	InvreqPayerNote  *string    `json:"invreq_payer_note,omitempty"`
	InvreqPaths      []pathView `json:"invreq_paths,omitempty"`
	InvreqBIP353Name string     `json:"invreq_bip_353_name,omitempty"`

	InvoicePaths          []pathView     `json:"invoice_paths,omitempty"`
	InvoiceBlindedPay     []payInfoView  `json:"invoice_blindedpay,omitempty"`
	InvoiceCreatedAt      *uint64        `json:"invoice_created_at,omitempty"`
	InvoiceRelativeExpiry *uint32        `json:"invoice_relative_expiry,omitempty"`
	InvoicePaymentHash    string         `json:"invoice_payment_hash,omitempty"`
	InvoiceAmount         *uint64        `json:"invoice_amount,omitempty"`
	InvoiceFallbacks      []fallbackView `json:"invoice_fallbacks,omitempty"`
	InvoiceFeatures       *string        `json:"invoice_features,omitempty"`
	InvoiceNodeID         string         `json:"invoice_node_id,omitempty"`
	MessagePaths          []pathView     `json:"static_invoice_message_paths,omitempty"`
	MessagePathsType      uint64         `json:"static_invoice_message_paths_type,omitempty"`
	ExpiresAt             *uint64        `json:"expires_at,omitempty"`

	Signature     string        `json:"signature,omitempty"`
	UnknownFields []unknownView `json:"unknown_fields,omitempty"`
}

type pathView struct {
	FirstNodeID  string    `json:"first_node_id,omitempty"`
	SCIDDir      string    `json:"sciddir,omitempty"`
	FirstPathKey string    `json:"first_path_key"`
	Hops         []hopView `json:"hops"`
}

type hopView struct {
	BlindedNodeID string `json:"blinded_node_id"`
	EncryptedData string `json:"encrypted_recipient_data"`
}

type payInfoView struct {
	FeeBaseMsat               uint32 `json:"fee_base_msat"`
	FeeProportionalMillionths uint32 `json:"fee_proportional_millionths"`
	CltvExpiryDelta           uint16 `json:"cltv_expiry_delta"`
	HtlcMinimumMsat           uint64 `json:"htlc_minimum_msat"`
	HtlcMaximumMsat           uint64 `json:"htlc_maximum_msat"`
	Features                  string `json:"features"`
}

type fallbackView struct {
	Version uint8  `json:"version"`
	Address string `json:"address"`
}

type unknownView struct {
	Type  uint64 `json:"type"`
	Value string `json:"value"`
}

func hexPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := hex.EncodeToString(b)
	return &s
}

func keyHex(k *btcec.PublicKey) string {
	if k == nil {
		return ""
	}
	return hex.EncodeToString(k.SerializeCompressed())
}

func pathViews(paths []*onionmsg.BlindedPath) []pathView {
	var out []pathView
	for _, p := range paths {
		pv := pathView{FirstPathKey: keyHex(p.PathKey)}
		if p.IntroNode != nil {
			pv.FirstNodeID = keyHex(p.IntroNode)
		} else {
			pv.SCIDDir = fmt.Sprintf("%d/%v",
				p.IntroSCIDDir.Direction, p.IntroSCIDDir.SCID)
		}
		for _, h := range p.Hops {
			pv.Hops = append(pv.Hops, hopView{
				BlindedNodeID: keyHex(h.BlindedNodePub),
				EncryptedData: hex.EncodeToString(h.CipherText),
			})
		}
		out = append(out, pv)
	}
	return out
}

func (v *bolt12View) setOfferID(id bolt12.OfferID, err error) {
	if err == nil {
		v.OfferID = hex.EncodeToString(id[:])
	}
}

func (v *bolt12View) setOffer(o *bolt12.OfferFields) {
	for _, c := range o.Chains {
		v.OfferChains = append(v.OfferChains, c.String())
	}
	v.OfferMetadata = hexPtr(o.Metadata)
	v.OfferCurrency = o.Currency
	v.OfferAmount = o.Amount
	v.OfferDescription = o.Description
	v.OfferFeatures = hexPtr(o.Features)
	v.OfferAbsoluteExpiry = o.AbsoluteExpiry
	v.OfferPaths = pathViews(o.Paths)
	v.OfferIssuer = o.Issuer
	v.OfferQuantityMax = o.QuantityMax
	v.OfferIssuerID = keyHex(o.IssuerID)
}

func (v *bolt12View) setRequest(r *bolt12.InvoiceRequestFields) {
	v.InvreqMetadata = hexPtr(r.Metadata)
	if r.Chain != nil {
		v.InvreqChain = r.Chain.String()
	}
	v.InvreqAmount = r.Amount
	v.InvreqFeatures = hexPtr(r.Features)
	v.InvreqQuantity = r.Quantity
	v.InvreqPayerID = keyHex(r.PayerID)
	v.InvreqPayerNote = r.PayerNote
	v.InvreqPaths = pathViews(r.Paths)
	if r.BIP353Name != nil {
		v.InvreqBIP353Name = r.BIP353Name.Name + "@" +
			r.BIP353Name.Domain
	}
}

func (v *bolt12View) setInvoice(f *bolt12.InvoiceFields) {
	v.InvoicePaths = pathViews(f.Paths)
	for _, p := range f.BlindedPay {
		v.InvoiceBlindedPay = append(v.InvoiceBlindedPay, payInfoView{
			FeeBaseMsat:               p.FeeBaseMsat,
			FeeProportionalMillionths: p.FeeProportionalMillionths,
			CltvExpiryDelta:           p.CltvExpiryDelta,
			HtlcMinimumMsat:           p.HtlcMinimumMsat,
			HtlcMaximumMsat:           p.HtlcMaximumMsat,
			Features:                  hex.EncodeToString(p.Features),
		})
	}
	v.InvoiceCreatedAt = f.CreatedAt
	v.InvoiceRelativeExpiry = f.RelativeExpiry
	if f.PaymentHash != nil {
		v.InvoicePaymentHash = hex.EncodeToString(f.PaymentHash[:])
	}
	v.InvoiceAmount = f.Amount
	for _, fb := range f.Fallbacks {
		v.InvoiceFallbacks = append(v.InvoiceFallbacks, fallbackView{
			Version: fb.Version,
			Address: hex.EncodeToString(fb.Address),
		})
	}
	v.InvoiceFeatures = hexPtr(f.Features)
	v.InvoiceNodeID = keyHex(f.NodeID)
	v.MessagePaths = pathViews(f.MessagePaths)
	v.MessagePathsType = f.MessagePathsType
}

// setUnknown lists the records holdd has no name for (odd ones it
// carries, including the experimental ranges).
func (v *bolt12View) setUnknown(records []bolt12.Record) {
	for _, r := range records {
		if bolt12.KnownType(r.Type) {
			continue
		}
		v.UnknownFields = append(v.UnknownFields, unknownView{
			Type: r.Type, Value: hex.EncodeToString(r.Value),
		})
	}
}
