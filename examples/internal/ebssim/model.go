// Package ebssim is the deterministic discrete-event simulation behind
// examples/ebs2011: the whole EBS outage of April 21–24, 2011 in one run,
// naive (the 2011 design, with the operators' actions of the day) and
// guarded (package remirror's engine and package shed's admission, no
// operator), on the same seed and the same clock.
//
// The model, in full:
//
//   - Three zones, each one storage cluster driven by a remirror.Engine, of
//     VolumesPerNode volumes per node (1,000 nodes per zone at the default
//     60,000 volumes), each volume mirrored on two nodes, placed so that every
//     node holds the same number of replicas. The clusters are nearly full:
//     their free room is FreeShare of the zone's volumes, in single slots
//     scattered over random nodes. Both runs start from the same cluster, so
//     neither holds a recovery reserve.
//   - A message (probe, search query and its answer) takes Latency; a copy
//     takes CopyTime ± 50%. Every volume loses its mirror now and then
//     (BackgroundLossPerHour): the background re-mirroring every cluster has.
//   - 00:47:00 PDT: the network change isolates IsolatedFraction of
//     us-east-1a's nodes; the cluster declares them failed. While it lasts the
//     zone's replication network carries nothing (the primary network's
//     traffic is on the secondary one). At 00:47:30 it is rolled back (the
//     postmortem gives no time; its API errors begin at 00:50).
//   - The race: a node closing a search request while others are open
//     crashes with probability RacePerClose × (other requests open), and
//     stays failed (the cluster does not reuse it).
//   - The control plane is one regional service of Threads threads. API
//     calls (create volume, attach, describe) come from every zone at
//     APIPerZone a second; the engines' elections and the degraded cluster's
//     negotiations come through it too. A create volume call for a cluster
//     without free room waits for room. Naive: one FIFO queue for all zones,
//     a client timeout of NaiveTimeout and, for create volume, a server-side
//     wait of CreateHang. Guarded: a shed.Scheduler per zone (its share of
//     the threads, a bounded queue, CoDel, deadlines) and GuardedTimeout.
//   - The operators of 2011 act in the naive run only (see Operator).
package ebssim

import "time"

// Zone names; zone 0 is the affected one.
var ZoneNames = [Zones]string{"us-east-1a", "us-east-1b", "us-east-1c"}

// The model's constants. Each is a choice of this model, not a figure of the
// postmortem, which gives none of them.
const (
	Zones           = 3
	VolumesPerNode  = 20
	MinNodesPerZone = 1000
	// FreeShare is the free room of every cluster, in volumes, as a share of
	// the zone's volumes.
	FreeShare = 0.035
	// IsolatedFraction is the share of us-east-1a's nodes the network
	// change isolates.
	IsolatedFraction = 0.065
	FaultStart       = 47 * time.Minute
	FaultDuration    = 30 * time.Second
	Latency          = 5 * time.Millisecond
	CopyTime         = 2 * time.Minute
	// ReplayCopyTime is how long one re-mirror onto a new server takes
	// under the operators' negotiation throttle (one at a time per server).
	ReplayCopyTime = 30 * time.Minute
	// NewCapacityShare is the capacity the operators add on day 2, as a
	// share of the affected cluster's nodes.
	NewCapacityShare = 0.15
	// BackgroundLossPerHour is the chance a volume loses its mirror in an
	// hour, in every zone.
	BackgroundLossPerHour = 0.0002
	// RacePerClose is the race's strength (see the package comment).
	RacePerClose = 0.00002

	Threads      = 12
	APIPerZone   = 4.0 // calls a second
	CreateShare  = 0.05
	AttachShare  = 0.25
	APIService   = 20 * time.Millisecond
	CreateHang   = 5 * time.Minute
	NaiveTimeout = time.Minute // the 2011 server's queue timeout, and the engines' wait for an election
	// APIClientTimeout is how long an API client waits for an answer.
	APIClientTimeout = 10 * time.Second
	GuardedTimeout   = 2 * time.Second
	// GuardedQueue and GuardedMaxWait bound each zone's queue in the
	// guarded control plane.
	GuardedQueue   = 64
	GuardedMaxWait = 500 * time.Millisecond
	// ElectService is the cost of an election at the reference size
	// (RefZoneVolumes volumes a zone); NegotiationService that of a
	// negotiation with the degraded cluster. The control plane serves the
	// whole fleet, so its per-volume work is scaled to the cluster's size:
	// the load it sees does not depend on -volumes.
	ElectService       = 5 * time.Millisecond
	NegotiationService = 600 * time.Millisecond
	// NegotiationRamp is how long a volume must have failed to re-mirror
	// before it negotiates at every search attempt.
	NegotiationRamp = 8 * time.Hour
	RefZoneVolumes  = 20000
)

// Operator times of 2011 (PDT, from midnight of April 21), and what the
// naive run's operators do then.
const (
	DisableCreate    = 2*time.Hour + 40*time.Minute  // create volume disabled in us-east-1a
	CutOff           = 8*time.Hour + 20*time.Minute  // cluster cut off from the control plane
	BlockFutile      = 11*time.Hour + 30*time.Minute // futile contacts blocked
	Contained        = 12*time.Hour + 4*time.Minute  // outage contained
	AddCapacity      = 26 * time.Hour                // Apr 22 02:00: new capacity, throttled replay
	BacklogStart     = 59*time.Hour + 30*time.Minute // Apr 23 11:30
	ControlPlaneBack = 63*time.Hour + 35*time.Minute // Apr 23 15:35
	APIBack          = 66*time.Hour + 15*time.Minute // Apr 23 18:15
	Restored22       = 36*time.Hour + 30*time.Minute // Apr 22 12:30: all but 2.2%
	Restored104      = 84*time.Hour + 30*time.Minute // Apr 24 12:30: all but 1.04%
	APIErrorsBegin   = 50 * time.Minute              // 00:50
	APIRecovered     = 2*time.Hour + 50*time.Minute  // 02:50
	SecondBrownout   = 5*time.Hour + 30*time.Minute  // 05:30
	NewInstancesOK   = 12 * time.Hour                // noon
	SnapshotsBegin   = 87 * time.Hour                // Apr 24 15:00
	PostmortemStuck  = 13.0                          // % of the affected zone
	PostmortemRace   = 5.0                           // % added by the race
	PostmortemOther  = 0.07                          // % peak outside the zone (less than)
	PostmortemUnrec  = 0.07                          // % never restored
	PostmortemLeft1  = 2.2                           // % left on Apr 22 12:30
	PostmortemLeft2  = 1.04                          // % left on Apr 24 12:30
)
