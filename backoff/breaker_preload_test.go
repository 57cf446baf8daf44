package backoff

// preloadTimeWindow adds counts to bucket i and to the window's sums, as if
// that many calls had been recorded.
func preloadTimeWindow(w *timeWindow, i int, calls, failures, slows int64) {
	for _, b := range []*timeBucket{&w.ring[i], &w.sum} {
		b.calls.Add(calls)
		b.failures.Add(failures)
		b.slows.Add(slows)
	}
}
