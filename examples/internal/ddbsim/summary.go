package ddbsim

import "time"

// Window is a span of minutes [From, To]; From < 0 means none.
type Window struct{ From, To int }

// Has says whether the window holds any minute.
func (w Window) Has() bool { return w.From >= 0 }

// Duration is the window's length.
func (w Window) Duration() time.Duration {
	if !w.Has() {
		return 0
	}
	return time.Duration(w.To-w.From+1) * time.Minute
}

// Summary is a run's stages: when each was abnormal, first to last minute.
type Summary struct {
	DNSEmpty, DynamoDB, Leases, Launches, Propagation, NLBErrors Window
	// Backlog is when the Network Manager had more than a minute's work
	// waiting. It is not a stage of FullRecovery: the postmortem's
	// recovery is of launches, and a guarded Network Manager works the
	// backlog off behind fresh launches after every stage is normal.
	Backlog Window
	// LeasedAgain is the first minute after the outage with every droplet
	// leased; -1 if none.
	LeasedAgain int
	// Leased99After is from DynamoDB's return to 99% leased; -1 if never.
	Leased99After time.Duration
	// FullRecovery is the first minute from which every stage is normal.
	FullRecovery     int
	LaunchFailureMin int
	PropMaxSeconds   float64
	NLBMinPct        float64
	NLBFlaps         int
	DynamoDBDownMin  int
	DNSEmptyMin      int
}

func window(tl []Minute, bad func(Minute) bool) Window {
	w := Window{-1, -1}
	for _, m := range tl {
		if bad(m) {
			if w.From < 0 {
				w.From = m.Minute
			}
			w.To = m.Minute
		}
	}
	return w
}

// launchOK10 is the launch success over the ten minutes up to m.
func launchOK10(tl []Minute, m int) float64 {
	var req, ok float64
	for j := max(0, m-9); j <= m; j++ {
		req += float64(tl[j].LaunchRequests)
		ok += tl[j].LaunchOKPct * float64(tl[j].LaunchRequests) / 100
	}
	if req == 0 {
		return 100
	}
	return 100 * ok / req
}

// Summarize computes the stages of r.
func (r *Result) Summarize() Summary {
	tl := r.Timeline
	s := Summary{LeasedAgain: -1, Leased99After: -1, NLBMinPct: 100, PropMaxSeconds: r.PropagationMaxS}
	s.DNSEmpty = window(tl, func(m Minute) bool { return m.DNSNonEmpty == 0 })
	s.DynamoDB = window(tl, func(m Minute) bool { return m.DynamoDBOKPct < 99 })
	s.Leases = window(tl, func(m Minute) bool { return m.LeasedPct < 99.9 })
	s.Launches = window(tl, func(m Minute) bool { return launchOK10(tl, m.Minute) < 95 })
	s.Propagation = window(tl, func(m Minute) bool { return m.PropP99Seconds > NormalProp.Seconds() })
	s.NLBErrors = window(tl, func(m Minute) bool { return m.ConnectionErrors })
	s.Backlog = window(tl, func(m Minute) bool { return m.NMBacklog > r.NMPerMin })
	for _, m := range tl {
		if m.DNSNonEmpty == 0 {
			s.DNSEmptyMin++
		}
		if m.DynamoDBOKPct < 99 {
			s.DynamoDBDownMin++
		}
		if launchOK10(tl, m.Minute) < 95 {
			s.LaunchFailureMin++
		}
		s.NLBMinPct = min(s.NLBMinPct, m.NLBCapacityPct)
		s.NLBFlaps += m.NLBFlaps
	}
	if r.OutageFrom >= 0 {
		back := int(r.OutageTo / time.Minute)
		for _, m := range tl[min(back, len(tl)-1):] {
			if m.LeasedPct >= 99 && s.Leased99After < 0 {
				s.Leased99After = time.Duration(m.Minute+1)*time.Minute - r.OutageTo
			}
			if m.LeasedPct >= 100 && s.LeasedAgain < 0 {
				s.LeasedAgain = m.Minute
			}
		}
	}
	last := -1
	for _, w := range []Window{s.DNSEmpty, s.DynamoDB, s.Leases, s.Launches, s.Propagation, s.NLBErrors} {
		if w.Has() {
			last = max(last, w.To)
		}
	}
	s.FullRecovery = last + 1
	if last == len(tl)-1 {
		s.FullRecovery = -1
	}
	if last < 0 {
		s.FullRecovery = 0
	}
	return s
}
