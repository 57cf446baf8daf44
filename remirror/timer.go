package remirror

// timer is one armed retry of a volume. A volume re-arming its timer leaves
// the old entry in the heap; seq tells it apart, and it is skipped when it
// comes up.
type timer struct {
	at  int64
	vol int32
	seq uint32
}

// timerHeap is a binary min-heap of timers by time, without the interface
// calls of container/heap.
type timerHeap []timer

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].at <= t.at {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = t
}

func (h *timerHeap) pop() timer {
	s := *h
	top := s[0]
	last := s[len(s)-1]
	s = s[:len(s)-1]
	*h = s
	if len(s) == 0 {
		return top
	}
	i := 0
	for {
		c := 2*i + 1
		if c >= len(s) {
			break
		}
		if c+1 < len(s) && s[c+1].at < s[c].at {
			c++
		}
		if last.at <= s[c].at {
			break
		}
		s[i] = s[c]
		i = c
	}
	s[i] = last
	return top
}
