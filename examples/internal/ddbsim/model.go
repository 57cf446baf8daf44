// Package ddbsim simulates the DynamoDB / EC2 / NLB cascade of October
// 19-20, 2025 in us-east-1 on one virtual clock, in two modes: naive (the
// 2025 designs, with the operators' actions of the postmortem) and guarded
// (the library's dnsplan, lease, shed and velocity control, with no
// operator). One run holds every link of the chain:
//
//   - DynamoDB's DNS: a dnsplan.Planner publishes a plan a minute and three
//     enactors apply them to three endpoints of a dnsplan.MemoryProvider.
//     Naive enactors check once and clean up blindly; one is stalled on
//     the regional endpoint, and the race empties it at about 23:48.
//     Guarded enactors are dnsplan.Enactor, stalled the same way.
//   - Clients resolve through caches: answers are kept a minute, empty
//     answers 15 minutes (the negative TTL).
//   - DWFM: one lease per droplet (TTL 156 minutes, renewed at half), which
//     needs DynamoDB. Naive re-establishment is one FIFO whose timed-out
//     attempts are queued again; guarded is lease.Recovery.
//   - EC2 launches: a steady stream; each needs DynamoDB, a leased droplet
//     and then network state from the Network Manager.
//   - Network Manager: naive one FIFO; guarded a shed.Scheduler with fresh
//     launches Critical (with a deadline) and the backlog Normal, its intake
//     throttled by the queue.
//   - NLB: targets of three zones replaced steadily by new instances; a
//     target without network state fails every other health check. Naive:
//     removal without limit and automatic AZ failover when the checker is
//     overloaded by flapping; guarded: velocity control and fail-static.
//
// Everything is drawn from one seeded PCG, so a Config gives the same Result
// every time.
package ddbsim

import (
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/examples/internal/textfmt"
)

// Offsets from the start of the run, 23:00 PDT on October 19, 2025: the
// postmortem's timestamps.
const (
	RaceAt            = 48 * time.Minute              // 23:48 regional endpoint empty
	Diagnosis         = time.Hour + 38*time.Minute    // 00:38 DNS identified as the source
	Mitigation        = 2*time.Hour + 15*time.Minute  // 01:15 temporary mitigations
	LeasesAllLapsed   = 3*time.Hour + 24*time.Minute  // 02:24 last lease time-outs
	DNSRepair         = 3*time.Hour + 25*time.Minute  // 02:25 DNS restored by operators
	CachesExpired     = 3*time.Hour + 40*time.Minute  // 02:40 clients recovered
	DWFMRestart       = 5*time.Hour + 14*time.Minute  // 04:14 throttle + restarts
	DWFMLeased        = 6*time.Hour + 28*time.Minute  // 05:28 all droplets leased
	NLBErrorsBegin    = 6*time.Hour + 30*time.Minute  // 05:30
	NMLatency         = 7*time.Hour + 21*time.Minute  // 06:21
	NLBDetected       = 7*time.Hour + 52*time.Minute  // 06:52
	FailoverDisabled  = 10*time.Hour + 36*time.Minute // 09:36
	PropagationNormal = 11*time.Hour + 36*time.Minute // 10:36
	ThrottlesRelaxed  = 12*time.Hour + 23*time.Minute // 11:23
	EC2RecoveryStarts = 13*time.Hour + 1*time.Minute  // 12:01
	FullRecovery      = 14*time.Hour + 50*time.Minute // 13:50
	FailoverEnabled   = 15*time.Hour + 9*time.Minute  // 14:09
	EventEnds         = 15*time.Hour + 20*time.Minute // 14:20
)

// Model constants. They are stated in the report, and none is tuned per seed.
const (
	LeaseTTL        = 156 * time.Minute // leases lapsed over 23:48-02:24
	AttemptTimeout  = 10 * time.Minute  // DWFM's establishment timeout
	EstablishCost   = 4200 * time.Millisecond
	RenewCost       = 420 * time.Millisecond
	DropletsPerWork = 1000 // droplets per DWFM worker
	LaunchesPer     = 1000 // droplets per launch request a minute
	NMCapacity      = 1.7  // Network Manager capacity, in launch rates
	BacklogShare    = 0.7  // re-established droplets with network state to propagate
	PositiveTTL     = time.Minute
	NegativeTTL     = 15 * time.Minute
	Clients         = 2000
	NLBPerZone      = 1000
	NLBChurn        = 0.001 // targets replaced per zone a minute
	NLBNeeded       = 0.80  // capacity the load needs; less means connection errors
	FailoverShare   = 0.003 // failing share of a zone's checks that fails it over
	CheckerFlaps    = 3     // flaps a minute the naive checker can absorb
	VelocityFloor   = 0.90  // guarded: capacity never removed below this
	FailStatic      = 0.30  // guarded: failing share above which nothing is removed
	ConnectBound    = 10 * time.Minute
	NormalProp      = 5 * time.Minute
	ThrottleAdmit   = 0.25 // naive: share of launch requests admitted 04:14-11:23
	RelaxFor        = 150 * time.Minute
	MinDroplets     = 10_000
	MaxDroplets     = 2_000_000
	DefaultDroplets = 100_000
	MinHours        = 16
	MaxHours        = 24
)

// Mode is naive or guarded.
type Mode int

const (
	Naive Mode = iota
	Guarded
)

func (m Mode) String() string {
	if m == Naive {
		return "naive"
	}
	return "guarded"
}

// Scenario is cascade or dynamodb-down.
type Scenario string

const (
	Cascade      Scenario = "cascade"
	DynamoDBDown Scenario = "dynamodb-down"
)

// ErrConfig is matched by every configuration error.
var ErrConfig = errors.New("ddbsim: invalid configuration")

// Config is one run's set-up.
type Config struct {
	Seed     uint64
	Droplets int
	Hours    int
	Scenario Scenario
	// Progress, if not nil, is called with the fraction of the run done.
	Progress func(m Mode, done float64)
}

// Validate reports every bad field.
func (c Config) Validate() error {
	errs := []error{
		textfmt.OutOfRange(ErrConfig, "-droplets", c.Droplets, MinDroplets, MaxDroplets),
		textfmt.OutOfRange(ErrConfig, "-hours", c.Hours, MinHours, MaxHours),
	}
	if c.Scenario != Cascade && c.Scenario != DynamoDBDown {
		errs = append(errs, fmt.Errorf("%w: -scenario %q is neither %q nor %q", ErrConfig, c.Scenario, Cascade, DynamoDBDown))
	}
	return errors.Join(errs...)
}

// Workers is DWFM's worker count for n droplets.
func Workers(n int) int { return max(10, n/DropletsPerWork) }

// Ideal is the time to lease every droplet with every worker busy.
func Ideal(n int) time.Duration {
	return time.Duration(int64(n) * int64(EstablishCost) / int64(Workers(n)))
}
