package daemon

import (
	"context"
	"sync"

	"github.com/holdd/holdd/plugin"
	"github.com/holdd/holdd/rpcclient"
)

// engineLinks is the engine's view of lnd's links (plugin.LinkSource) over
// lnd's channel events and channel list. A channel becoming active also
// means its peer (a sender) is back, so the paths of its held HTLCs are
// delivered again (onActive).
type engineLinks struct {
	activity *rpcclient.ChannelActivity
	onActive func(ctx context.Context, chanID uint64)

	// wg tracks the watch goroutine; the engine cancels its context on
	// Stop and the lsp role waits for it.
	wg sync.WaitGroup
}

// SubscribeLinks implements plugin.LinkSource: it streams the channels
// that become active until ctx ends.
func (l *engineLinks) SubscribeLinks(ctx context.Context) (
	<-chan plugin.LinkEvent, error) {

	events := make(chan plugin.LinkEvent)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(events)
		l.activity.WatchActive(ctx, func(chanID uint64) {
			if l.onActive != nil {
				l.onActive(ctx, chanID)
			}
			select {
			case events <- plugin.LinkEvent{ChanID: chanID,
				Active: true}:
			case <-ctx.Done():
			}
		})
	}()
	return events, nil
}

// LinkActive implements plugin.LinkSource.
func (l *engineLinks) LinkActive(ctx context.Context, chanID uint64) (bool,
	error) {

	return l.activity.Active(ctx, chanID)
}

// wait returns once the watch goroutine has ended.
func (l *engineLinks) wait() { l.wg.Wait() }
