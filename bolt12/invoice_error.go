package bolt12

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// TLV types of invoice_error.
const (
	TypeErroneousField = 1
	TypeSuggestedValue = 3
	TypeError          = 5
)

// InvoiceError is a BOLT 12 invoice_error.
type InvoiceError struct {
	// ErroneousField is the TLV type that had a problem, if named.
	ErroneousField *uint64

	// SuggestedValue is a value for ErroneousField, if given.
	SuggestedValue []byte

	// Error is the explanation.
	Error string

	records []Record
}

// DecodeInvoiceError decodes an invoice_error: the error string is required
// and UTF-8, a suggested_value needs an erroneous_field, and unknown even
// types are rejected.
func DecodeInvoiceError(b []byte) (*InvoiceError, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: invoice_error of %d bytes",
			ErrTooLarge, len(b))
	}
	all := []typeRange{{0, math.MaxUint64}}
	known := func(t uint64) bool { return false }
	records, err := parseRecordsChecked(b, typeChecker(all, known))
	if err != nil {
		return nil, err
	}
	ie := &InvoiceError{records: records}
	hasError := false
	for _, r := range records {
		switch r.Type {
		case TypeErroneousField:
			ie.ErroneousField, err = decodeTU64(r.Value)
			if err != nil {
				return nil, fmt.Errorf("%w: erroneous_field: %w",
					ErrInvalidField, err)
			}
		case TypeSuggestedValue:
			ie.SuggestedValue = clone(r.Value)
		case TypeError:
			if !utf8.Valid(r.Value) {
				return nil, fmt.Errorf("%w: error is not UTF-8",
					ErrInvalidField)
			}
			ie.Error = string(r.Value)
			hasError = true
		}
	}
	switch {
	case !hasError:
		return nil, fmt.Errorf("%w: error", ErrMissingField)
	case ie.SuggestedValue != nil && ie.ErroneousField == nil:
		return nil, fmt.Errorf("%w: suggested_value without "+
			"erroneous_field", ErrUnexpectedField)
	}
	return ie, nil
}

// NewInvoiceError builds an invoice_error. suggested needs field.
func NewInvoiceError(msg string, field *uint64,
	suggested []byte) (*InvoiceError, error) {

	var records []Record
	if field != nil {
		records = append(records,
			NewRecord(TypeErroneousField, encodeTU64(*field)))
	}
	if suggested != nil {
		records = append(records,
			NewRecord(TypeSuggestedValue, suggested))
	}
	records = append(records, NewRecord(TypeError, []byte(msg)))
	return DecodeInvoiceError(encodeRecords(records))
}

// Encode returns the invoice_error's TLV stream.
func (ie *InvoiceError) Encode() []byte {
	return encodeRecords(ie.records)
}
