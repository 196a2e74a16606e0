package plugin

import (
	"container/heap"
)

// dueHeap orders active entries by when they fall due (fail-back height or
// hold deadline), so that a block or a tick finds the due ones without
// walking every held HTLC under the engine lock: at 100k held that walk
// took 12 ms, for every block and every tick. Each entry keeps its
// position in the heap, so dropping it is O(log n). The engine's mu guards
// it.
type dueHeap struct {
	items []*entry

	// before orders two entries; the earliest due is at the root.
	before func(a, b *entry) bool

	// pos is where the entry's position in this heap is kept; -1 means
	// not in it.
	pos func(*entry) *int
}

// Len, Less, Swap, Push and Pop implement heap.Interface.
func (h *dueHeap) Len() int           { return len(h.items) }
func (h *dueHeap) Less(i, j int) bool { return h.before(h.items[i], h.items[j]) }

func (h *dueHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.pos(h.items[i]) = i
	*h.pos(h.items[j]) = j
}

func (h *dueHeap) Push(x any) {
	ent := x.(*entry)
	*h.pos(ent) = len(h.items)
	h.items = append(h.items, ent)
}

func (h *dueHeap) Pop() any {
	last := len(h.items) - 1
	ent := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	*h.pos(ent) = -1
	return ent
}

// add puts ent in the heap.
func (h *dueHeap) add(ent *entry) {
	heap.Push(h, ent)
}

// remove takes ent out of the heap if it is in it.
func (h *dueHeap) remove(ent *entry) {
	if i := *h.pos(ent); i >= 0 && i < len(h.items) && h.items[i] == ent {
		heap.Remove(h, i)
	}
}

// due returns every entry for which isDue holds. isDue must agree with
// the heap's order: an entry that is not due has no due entry after it,
// so the walk stops at the first one that is not, and costs in proportion
// to what it returns.
func (h *dueHeap) due(isDue func(*entry) bool) []*entry {
	var (
		out   []*entry
		stack []int
	)
	if len(h.items) > 0 {
		stack = append(stack, 0)
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !isDue(h.items[i]) {
			continue
		}
		out = append(out, h.items[i])
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < len(h.items) {
				stack = append(stack, c)
			}
		}
	}
	return out
}

// newFailbackHeap orders entries by fail-back height.
func newFailbackHeap() *dueHeap {
	return &dueHeap{
		before: func(a, b *entry) bool {
			return a.failbackHeight < b.failbackHeight
		},
		pos: func(e *entry) *int { return &e.failbackPos },
	}
}

// newDeadlineHeap orders entries by hold deadline. Only entries with a
// deadline go in it.
func newDeadlineHeap() *dueHeap {
	return &dueHeap{
		before: func(a, b *entry) bool {
			return a.deadline.Before(b.deadline)
		},
		pos: func(e *entry) *int { return &e.deadlinePos },
	}
}

// newPathExpiryHeap orders entries by the expiry of their release paths.
// Only held entries with a known path expiry go in it.
func newPathExpiryHeap() *dueHeap {
	return &dueHeap{
		before: func(a, b *entry) bool {
			return a.pathExpiry.Before(b.pathExpiry)
		},
		pos: func(e *entry) *int { return &e.pathExpiryPos },
	}
}
