package ebssim

// The event queue: a 4-ary heap for events at arbitrary times, plus FIFOs
// for the events that follow a fixed delay (a message's answer, a call's
// client timeout), which arrive in time order and cost O(1) each. next
// merges them by time then insertion, the order a single heap gives.

type event struct {
	at      int64
	seq     uint64
	kind    uint8
	zone    uint8
	ok      bool
	input   uint8
	node    int32
	vol     int32
	attempt uint32
	aux     int32
}

const (
	fifoLatency = iota
	fifoTimeout
	numFIFOs
)

type fifo struct {
	buf        []event // len is zero or a power of two
	head, size int
}

func (q *fifo) push(ev event) {
	if q.size == len(q.buf) {
		grown := make([]event, max(64, 2*len(q.buf)))
		for i := range q.size {
			grown[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.size)&(len(q.buf)-1)] = ev
	q.size++
}

func (q *fifo) front() *event { return &q.buf[q.head] }
func (q *fifo) back() *event  { return &q.buf[(q.head+q.size-1)&(len(q.buf)-1)] }

func (q *fifo) pop() event {
	ev := q.buf[q.head]
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.size--
	return ev
}

type events struct {
	seq   uint64
	heap  []event
	fifos [numFIFOs]fifo
}

func less(a, b *event) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

// later schedules ev in FIFO q, or in the heap if it would come before the
// last event of q.
func (s *events) later(q int, ev event) {
	f := &s.fifos[q]
	if f.size > 0 && ev.at < f.back().at {
		s.push(ev)
		return
	}
	s.seq++
	ev.seq = s.seq
	f.push(ev)
}

func (s *events) next() (event, bool) {
	var best *event
	from := -1
	if len(s.heap) > 0 {
		best = &s.heap[0]
	}
	for i := range s.fifos {
		f := &s.fifos[i]
		if f.size > 0 && (best == nil || less(f.front(), best)) {
			best, from = f.front(), i
		}
	}
	switch {
	case best == nil:
		return event{}, false
	case from < 0:
		return s.pop(), true
	}
	return s.fifos[from].pop(), true
}

func (s *events) push(ev event) {
	s.seq++
	ev.seq = s.seq
	s.heap = append(s.heap, ev)
	h := s.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !less(&ev, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = ev
}

func (s *events) pop() event {
	h := s.heap
	top := h[0]
	last := h[len(h)-1]
	h = h[:len(h)-1]
	s.heap = h
	if len(h) == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= len(h) {
			break
		}
		best := c
		for j := c + 1; j < c+4 && j < len(h); j++ {
			if less(&h[j], &h[best]) {
				best = j
			}
		}
		if !less(&h[best], &last) {
			break
		}
		h[i] = h[best]
		i = best
	}
	h[i] = last
	return top
}
