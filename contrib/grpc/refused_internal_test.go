package grpcguard

import (
	"context"
	"testing"

	"github.com/stormguard/stormguard/shed"
	"google.golang.org/grpc/metadata"
)

// TestEveryRefusalReasonIsTrusted: a Client believes every value a
// Server writes in RefusedKey, so that no refusal of a Server goes
// unretried because the two lists drifted apart.
func TestEveryRefusalReasonIsTrusted(t *testing.T) {
	rs := []*shed.Refusal{nil}
	for _, reason := range []error{shed.ErrQueueFull, shed.ErrWaitTimeout, shed.ErrPaused, shed.ErrTooManyKeys,
		shed.ErrDeadline, shed.ErrEvicted, shed.ErrRateLimited, shed.ErrLimitReached, shed.ErrShed} {
		rs = append(rs, &shed.Refusal{Reason: reason})
	}
	rs = append(rs, &shed.Refusal{Reason: shed.ErrWaitTimeout, Cause: context.Canceled},
		&shed.Refusal{Reason: shed.ErrWaitTimeout, Cause: context.DeadlineExceeded})
	for _, r := range rs {
		v := RefusalReason(r)
		if !refused(metadata.MD{RefusedKey: {v}}) {
			t.Errorf("RefusalReason(%v) = %q, which a Client does not believe", r, v)
		}
	}
}
