package eventfeed

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFeed(t *testing.T) {
	f := New[int]()
	fast, cancelFast := f.Subscribe(4)
	slow, cancelSlow := f.Subscribe(1)

	for i := 1; i <= 3; i++ {
		f.Publish(i)
	}
	require.Equal(t, []int{1, 2, 3}, []int{<-fast, <-fast, <-fast})
	require.Equal(t, 1, <-slow)
	require.Equal(t, uint64(2), f.Dropped())

	cancelSlow()
	cancelSlow()
	_, open := <-slow
	require.False(t, open)

	f.Publish(4)
	require.Equal(t, 4, <-fast)
	require.Equal(t, uint64(2), f.Dropped())
	cancelFast()
}
