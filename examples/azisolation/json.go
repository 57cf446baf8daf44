package main

import (
	"time"
)

// jsonOutput is the -json object.
type jsonOutput struct {
	Config     jsonConfig     `json:"config"`
	Postmortem jsonPostmortem `json:"postmortem"`
	Designs    []jsonDesign   `json:"designs"`
}

type jsonConfig struct {
	DurationS         float64 `json:"duration_s"`
	RatePerZone       int     `json:"rate_per_zone"`
	SickAfterS        float64 `json:"sick_after_s"`
	SickForS          float64 `json:"sick_for_s"`
	SickDelayMS       float64 `json:"sick_delay_ms"`
	ClientTimeoutMS   float64 `json:"client_timeout_ms"`
	Pool              int     `json:"pool"`
	Seed              uint64  `json:"seed"`
	ZoneCap           int     `json:"zone_cap"`
	CallTimeoutMinMS  float64 `json:"call_timeout_min_ms"`
	CallTimeoutMaxMS  float64 `json:"call_timeout_max_ms"`
	SickZoneHung      bool    `json:"sick_zone_hung"`
	SickZoneKind      string  `json:"sick_zone_kind"` // slow, edge or hung: where its calls fall against the ceiling
	LearnTimeS        float64 `json:"learn_time_s"`
	ServedShareDemand float64 `json:"served_share_demand"`
}

type jsonPostmortem struct {
	ErrorsAfterSickS     float64 `json:"errors_after_sick_s"`
	PauseAfterSickS      float64 `json:"pause_after_sick_s"`
	RecoveredAfterPauseS float64 `json:"recovered_after_pause_s"`
}

type jsonDesign struct {
	Name               string       `json:"name"`
	Design             string       `json:"design"`
	SlotsPerZone       int          `json:"slots_per_zone"`
	AchievedRate       float64      `json:"achieved_rate_per_zone"`
	Zones              []jsonZone   `json:"zones"`
	SickServedPct      float64      `json:"sick_zone_served_while_sick_pct"`
	SickServedRequests int          `json:"sick_zone_requests_while_sick"`
	SickCarriablePct   float64      `json:"sick_zone_carriable_pct"`
	SettledServedPct   float64      `json:"sick_zone_served_after_learning_pct"`
	SettledRequests    int          `json:"sick_zone_requests_after_learning"`
	PausedAtS          *float64     `json:"paused_at_s"`
	ResumedAtS         *float64     `json:"resumed_at_s"`
	HealthyHitSecond   *int         `json:"healthy_below_99_first_second"`
	HealthyBackSecond  *int         `json:"healthy_back_from_second"`
	Events             []jsonEvent  `json:"events"`
	Seconds            []jsonSecond `json:"seconds"`
}

type jsonZone struct {
	Zone       string  `json:"zone"`
	Role       string  `json:"role"`
	Requests   int     `json:"requests"`
	OK         int     `json:"ok"`
	SuccessPct float64 `json:"success_pct"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	Verdict    string  `json:"verdict,omitempty"`
}

type jsonEvent struct {
	AtS   float64 `json:"at_s"`
	Zone  string  `json:"zone"`
	Event string  `json:"event"`
}

type jsonSecond struct {
	T     int              `json:"t_s"`
	Zones []jsonSecondZone `json:"zones"`
}

type jsonSecondZone struct {
	jsonZone
	InFlightMax   int     `json:"in_flight_max"`
	Limit         int     `json:"limit"`
	LimitLow      int     `json:"limit_low"`
	CallTimeoutMS float64 `json:"call_timeout_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func jz(z zoneStats, i int) jsonZone {
	return jsonZone{Zone: z.zone, Role: role(i), Requests: z.n, OK: z.ok, SuccessPct: 100 * z.success(), P50MS: ms(z.p50), P99MS: ms(z.p99)}
}

func toJSON(cfg config, runs []*designRun) jsonOutput {
	out := jsonOutput{
		Config: jsonConfig{
			DurationS: cfg.duration.Seconds(), RatePerZone: cfg.rate, SickAfterS: cfg.sickAfter.Seconds(), SickForS: cfg.sickFor.Seconds(),
			SickDelayMS: ms(cfg.sickDelay), ClientTimeoutMS: ms(cfg.clientWait), Pool: cfg.pool, Seed: cfg.seed, ZoneCap: zoneCap(cfg.pool),
			CallTimeoutMinMS: ms(timeoutFloor), CallTimeoutMaxMS: ms(ceiling(cfg.clientWait)), SickZoneHung: hung(cfg), SickZoneKind: sickKind(cfg), LearnTimeS: learnTime(cfg).Seconds(), ServedShareDemand: servedShare,
		},
		Postmortem: jsonPostmortem{pmErrorsAfterSick.Seconds(), pmPauseAfterSick.Seconds(), pmRecoveredAfterPause.Seconds()},
	}
	for _, d := range runs {
		jd := jsonDesign{
			Name: d.name, Design: d.short, SlotsPerZone: d.slots, AchievedRate: d.run.load.achieved(cfg.duration),
			SickServedPct: 100 * d.sickServed.success(), SickServedRequests: d.sickServed.n,
			SickCarriablePct: 100 * carried(d.slots, cfg.rate, cfg.sickDelay),
			SettledServedPct: 100 * d.settled.success(), SettledRequests: d.settled.n,
		}
		for i, z := range d.zones {
			j := jz(z, i)
			j.Verdict = z.verdict()
			jd.Zones = append(jd.Zones, j)
		}
		if t, ok := firstEvent(d.run.events, evPaused); ok {
			v := t.Seconds()
			jd.PausedAtS = &v
		}
		if t, ok := firstEvent(d.run.events, evResumed); ok {
			v := t.Seconds()
			jd.ResumedAtS = &v
		}
		if hit, back := healthyHit(d.secs, 0); hit >= 0 {
			jd.HealthyHitSecond = &hit
			if back >= 0 {
				jd.HealthyBackSecond = &back
			}
		}
		for _, e := range d.run.events {
			jd.Events = append(jd.Events, jsonEvent{e.at.Seconds(), zones[e.zone], e.what})
		}
		for s, sec := range d.secs {
			js := jsonSecond{T: s}
			for i, z := range sec {
				js.Zones = append(js.Zones, jsonSecondZone{jz(z.zoneStats, i), z.inFlight, z.limit, z.lowLimit, ms(z.timeout)})
			}
			jd.Seconds = append(jd.Seconds, js)
		}
		out.Designs = append(out.Designs, jd)
	}
	return out
}
