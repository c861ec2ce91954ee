package event

import (
	"sort"
	"time"
)

// Histogram counts events over time in bounded memory. It starts at
// millisecond resolution and doubles its bucket width whenever it would
// hold more than its limit of buckets, so that a month of errors costs no
// more than a burst; Resolution says how exact a count over a window is.
type Histogram struct {
	res     time.Duration
	limit   int
	buckets map[int64]int64 // bucket start (unix ns / res) -> count
}

// DefaultBuckets bounds a histogram to about 2 MB.
const DefaultBuckets = 1 << 16

// NewHistogram returns a histogram of at most limit buckets.
func NewHistogram(limit int) *Histogram {
	if limit < 2 {
		limit = 2
	}
	return &Histogram{res: time.Millisecond, limit: limit, buckets: map[int64]int64{}}
}

// Add counts n events at t.
func (h *Histogram) Add(t time.Time, n int64) {
	h.buckets[h.key(t)] += n
	for len(h.buckets) > h.limit {
		h.coarsen()
	}
}

func (h *Histogram) key(t time.Time) int64 { return floorDiv(t.UnixNano(), int64(h.res)) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (h *Histogram) coarsen() {
	old := h.buckets
	h.res *= 2
	h.buckets = make(map[int64]int64, len(old)/2+1)
	for k, n := range old {
		h.buckets[floorDiv(k, 2)] += n
	}
}

// Resolution is the width of a bucket.
func (h *Histogram) Resolution() time.Duration { return h.res }

// Count returns the events in [from, to], both inclusive, at the
// histogram's resolution: a bucket counts when its start is in the window.
func (h *Histogram) Count(from, to time.Time) int64 {
	lo, hi := h.key(from), h.key(to)
	var n int64
	for k, c := range h.buckets {
		if k >= lo && k <= hi {
			n += c
		}
	}
	return n
}

// Total returns every counted event.
func (h *Histogram) Total() int64 {
	var n int64
	for _, c := range h.buckets {
		n += c
	}
	return n
}

// Bucket is one bucket of a histogram.
type Bucket struct {
	Start time.Time
	Count int64
}

// Buckets returns the non-empty buckets in time order.
func (h *Histogram) Buckets() []Bucket {
	out := make([]Bucket, 0, len(h.buckets))
	for k, c := range h.buckets {
		out = append(out, Bucket{Start: time.Unix(0, k*int64(h.res)).UTC(), Count: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Merge adds other's counts, each moved by f (the identity when nil).
func (h *Histogram) Merge(other *Histogram, f func(time.Time) time.Time) {
	for h.res < other.res {
		h.coarsen()
	}
	for _, b := range other.Buckets() {
		t := b.Start
		if f != nil {
			t = f(t)
		}
		h.Add(t, b.Count)
	}
}
