package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecretGeneratedOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "holdd.db")
	want := bytes.Repeat([]byte{0x5a}, 32)

	var calls atomic.Int32
	gen := func() ([]byte, error) {
		calls.Add(1)
		return bytes.Clone(want), nil
	}

	s, err := Open(ctx, path)
	require.NoError(t, err)
	got, err := s.Secret(ctx, "path_key", gen)
	require.NoError(t, err)
	require.Equal(t, want, got)
	got, err = s.Secret(ctx, "path_key", gen)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, int32(1), calls.Load())
	require.NoError(t, s.Close())

	s = openTest(t, path)
	got, err = s.Secret(ctx, "path_key", gen)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, int32(1), calls.Load())

	// Without a generator a missing secret is reported, not created.
	_, err = s.Secret(ctx, "other", nil)
	require.ErrorIs(t, err, ErrNotFound)
	got, err = s.Secret(ctx, "path_key", nil)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestSecretConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	var calls atomic.Int32
	gen := func() ([]byte, error) {
		n := calls.Add(1)
		// Distinct per call, so a second generation would show.
		return []byte{byte(n), 1, 2, 3}, nil
	}

	const n = 10
	var wg sync.WaitGroup
	results := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Secret(ctx, "k", gen)
		}()
	}
	wg.Wait()

	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, []byte{1, 1, 2, 3}, results[i])
	}
	require.Equal(t, int32(1), calls.Load())
}

func TestSecretGenerateFailure(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	boom := errors.New("no entropy")

	tests := []struct {
		name    string
		gen     func() ([]byte, error)
		wantErr error
	}{
		{"error", func() ([]byte, error) { return nil, boom }, boom},
		{"empty", func() ([]byte, error) { return []byte{}, nil },
			ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Secret(ctx, "k", tc.gen)
			require.ErrorIs(t, err, tc.wantErr)
			_, err = s.Secret(ctx, "k", nil)
			require.ErrorIs(t, err, ErrNotFound)
		})
	}

	_, err := s.Secret(ctx, "", func() ([]byte, error) {
		return []byte{1}, nil
	})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	_, err := s.GetSetting(ctx, "caps")
	require.ErrorIs(t, err, ErrNotFound)

	steps := []struct {
		value   string
		wantErr error
		want    string
	}{
		{`{"max_held":10}`, nil, `{"max_held":10}`},
		{`{"max_held":20,"per_peer":2}`, nil, `{"max_held":20,"per_peer":2}`},
		{`{"max_held":`, ErrInvalidArgument, `{"max_held":20,"per_peer":2}`},
		{``, ErrInvalidArgument, `{"max_held":20,"per_peer":2}`},
		{`null`, nil, `null`},
	}
	for _, st := range steps {
		err := s.PutSetting(ctx, "caps", []byte(st.value))
		if st.wantErr != nil {
			require.ErrorIs(t, err, st.wantErr)
		} else {
			require.NoError(t, err)
		}
		got, err := s.GetSetting(ctx, "caps")
		require.NoError(t, err)
		require.Equal(t, []byte(st.want), got)
	}

	require.ErrorIs(t, s.PutSetting(ctx, "", []byte(`1`)),
		ErrInvalidArgument)
}
