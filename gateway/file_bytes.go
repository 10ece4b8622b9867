package gateway

// The byte phase of a transfer: one pump goroutine per attempt moves the
// files, in content order, over their transports.

import (
	"context"

	"github.com/securejingle/securejingle/jingle"
)

// pump is one attempt of the byte phase.
type pump struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// pumpReport is what the pump tells the transfer's goroutine.
type pumpReport struct {
	file int
	err  error
}

func (x *transfer) startPump(r *xferRun, from int) {}

func (x *transfer) stopPump(r *xferRun) {
	if r.pump != nil {
		r.pump.cancel()
		<-r.pump.done
		r.pump = nil
	}
}

func (x *transfer) onPump(r *xferRun, p pumpReport) {}

func (x *transfer) onInfo(r *xferRun, j *jingle.Jingle) {}

func (x *transfer) onTransportReplace(r *xferRun, j *jingle.Jingle) {}

func (x *transfer) onTransportAnswer(r *xferRun, j *jingle.Jingle) {}

func (x *transfer) resume(r *xferRun) error { return errNotResumable }

func (x *transfer) prepareReceive(r *xferRun, dir string) error { return nil }

func (x *transfer) abortReceive() {}
