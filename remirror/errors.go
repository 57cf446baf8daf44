package remirror

import (
	"errors"
	"fmt"
)

// Errors of the engine. Every refusal of an input wraps one of them, says
// what was refused with the numbers, and leaves the engine unchanged. A
// stale election answer is refused with a *fence.StaleError instead
// (errors.Is(err, fence.ErrStale)).
var (
	// ErrUnknownVolume: the input names a volume the engine does not have
	// (never added, or deleted).
	ErrUnknownVolume = errors.New("remirror: unknown volume")
	// ErrUnknownNode: the input names a node the engine does not have.
	ErrUnknownNode = errors.New("remirror: unknown node")
	// ErrInvalidInput: the input is malformed (negative capacity, zero
	// size, a volume's two replicas on one node, an unknown kind, a zero
	// token, a time outside the range of time.Time.UnixNano, an action
	// other than Elect given to Authority.Elect, or a nil context, typed
	// nils included).
	ErrInvalidInput = errors.New("remirror: invalid input")
	// ErrDuplicate: the input answers a request that has already been
	// answered or abandoned, or reports a fact the engine already knows (a
	// second "peer lost", a node failing twice). Drivers may ignore it.
	ErrDuplicate = errors.New("remirror: duplicate input")
	// ErrOutOfOrder: the input does not fit the volume's or node's state
	// (an answer to a request never made, an election result for another
	// node), or its time is before an earlier input's.
	ErrOutOfOrder = errors.New("remirror: input out of order")
	// ErrNoSpace: a new volume does not fit on the nodes it names without
	// using the recovery reserve, or the nodes are failed or quarantined.
	ErrNoSpace = errors.New("remirror: no space")
)

// The errors of the methods of a zero Engine, Concurrent or Authority, and
// of a nil context.
var (
	errZeroEngine     = fmt.Errorf("%w: Engine not built with NewEngine", ErrInvalidConfig)
	errZeroConcurrent = fmt.Errorf("%w: Concurrent not built with NewConcurrent", ErrInvalidConfig)
	errZeroAuthority  = fmt.Errorf("%w: Authority not built with NewAuthority", ErrInvalidConfig)
	errNilContext     = fmt.Errorf("%w: nil context", ErrInvalidInput)
)

type detail uint8

const (
	detailUnknownNode detail = iota + 1
	detailNodeAlready
	detailKind
	detailUnknownVolume
	detailNotReplica
	detailAlreadyLost
	detailOtherSide
	detailNotOutstanding
	detailNeverMade
	detailWrongTarget
	detailWrongCandidate
)

// InputError is the refusal of an Input by Engine.Step. errors.Is matches
// its Reason (ErrUnknownVolume, ErrUnknownNode, ErrInvalidInput,
// ErrDuplicate or ErrOutOfOrder). It records the input and what the engine
// knew of the volume, and formats its message only when asked, so that a
// driver that ignores duplicate answers pays little for them.
type InputError struct {
	// Reason is the sentinel saying why.
	Reason error
	// Input is the refused input.
	Input Input
	// State is the state of the volume named by the input. It and the
	// four fields after it describe that volume when AddVolume returned
	// its ID (even if it was deleted since), and are zero otherwise.
	State State
	// Newest is the volume's newest request attempt: an answer must quote
	// it while that request is outstanding.
	Newest uint32
	// Survivor is the volume's survivor (its primary when it is Healthy).
	Survivor NodeID
	// Peer is the volume's lost peer (its secondary when it is Healthy).
	Peer NodeID
	// Target is the node the volume is querying or copying to, or NoNode.
	Target NodeID
	// Nodes is how many nodes the engine has.
	Nodes int
	// Volumes is how many volumes AddVolume added, deleted ones included.
	Volumes int
	detail  detail
}

// Error says what was refused and why, with the numbers, for example
// `remirror: duplicate input: copy-result for attempt 3 of volume 7, which
// is no longer outstanding (newest attempt 4, state searching)`.
func (e *InputError) Error() string {
	if e == nil {
		return "remirror: <nil InputError>"
	}
	in := e.Input
	var what string
	switch e.detail {
	case detailUnknownNode:
		what = fmt.Sprintf("%v for node %d (have %d nodes)", in.Kind, in.Node, e.Nodes)
	case detailNodeAlready:
		state := "up"
		if in.Kind == NodeFailed {
			state = "down"
		}
		what = fmt.Sprintf("%v for node %d, which is already %s", in.Kind, in.Node, state)
	case detailKind:
		what = fmt.Sprintf("unknown input kind %d", in.Kind)
	case detailUnknownVolume:
		what = fmt.Sprintf("%v for volume %d (have %d volumes)", in.Kind, in.Volume, e.Volumes)
	case detailNotReplica:
		what = fmt.Sprintf("peer lost reported by node %d, which holds no replica of volume %d (replicas on %d and %d)", in.Node, in.Volume, e.Survivor, e.Peer)
	case detailAlreadyLost:
		what = fmt.Sprintf("volume %d already lost its mirror (state %v)", in.Volume, e.State)
	case detailOtherSide:
		what = fmt.Sprintf("node %d reports losing its peer, but volume %d is already recovering from node %d (state %v)", in.Node, in.Volume, e.Survivor, e.State)
	case detailNotOutstanding:
		what = fmt.Sprintf("%v for attempt %d of volume %d, which is no longer outstanding (newest attempt %d, state %v)", in.Kind, in.Attempt, in.Volume, e.Newest, e.State)
	case detailNeverMade:
		what = fmt.Sprintf("%v for attempt %d of volume %d, which was never made (newest attempt %d, state %v)", in.Kind, in.Attempt, in.Volume, e.Newest, e.State)
	case detailWrongTarget:
		what = fmt.Sprintf("search result from node %d for volume %d, which queried node %d", in.Node, in.Volume, e.Target)
	case detailWrongCandidate:
		what = fmt.Sprintf("node %d elected for volume %d, which asked for node %d", in.Node, in.Volume, e.Survivor)
	default:
		// An InputError the engine did not build, such as the zero value.
		what = fmt.Sprintf("%v for volume %d, node %d, attempt %d", in.Kind, in.Volume, in.Node, in.Attempt)
	}
	reason := "remirror: input refused"
	if e.Reason != nil {
		reason = e.Reason.Error()
	}
	return reason + ": " + what
}

// Unwrap returns Reason.
func (e *InputError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Reason
}
