package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// u64Blob encodes an unsigned id as 8 big-endian bytes: every uint64
// round-trips (SQLite INTEGER is signed) and SQLite's memcmp ordering of
// BLOBs equals numeric order, which ListHTLCs relies on.
func u64Blob(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)

	return b[:]
}

func blobU64(b []byte, col string) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("column %s: want 8 bytes, got %d", col,
			len(b))
	}

	return binary.BigEndian.Uint64(b), nil
}

// blobFixed copies a fixed-length BLOB column into dst.
func blobFixed(dst []byte, b []byte, col string) error {
	if len(b) != len(dst) {
		return fmt.Errorf("column %s: want %d bytes, got %d", col,
			len(dst), len(b))
	}
	copy(dst, b)

	return nil
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// timeNanos encodes t as unix nanoseconds, 0 for the zero time. Times that
// do not fit in int64 nanoseconds are refused rather than silently wrapped.
// The Unix epoch itself also encodes as 0 and so reads back as the zero
// time; holdd never records that instant.
func timeNanos(t time.Time, field string) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%w: %s %v out of range", ErrInvalidArgument,
			field, t)
	}

	return t.UnixNano(), nil
}

func nanosTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}

	return time.Unix(0, n).UTC()
}
