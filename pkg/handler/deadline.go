package handler

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the per-call deadline of the handler function.

// callDeadline gives each call of one worker a context that ends at the
// call timeout. A context.WithTimeout per call would allocate a timer and
// register a child with the shared parent on every record, which costs
// about as much as a no-op handler; instead one context serves a worker's
// calls and each call only records when it started. A watchdog timer,
// armed once per timeout rather than once per call, cancels the context
// when the running call has passed its deadline. Only a call that runs out
// of time uses the context up; the next call gets a fresh one.
type callDeadline struct {
	parent  context.Context
	timeout time.Duration
	ctx     *deadlineCtx
}

// deadlineCtx is the context of a worker's calls, cancelled by its
// watchdog and reporting context.DeadlineExceeded once it was.
type deadlineCtx struct {
	context.Context
	cancel   context.CancelFunc
	timeout  time.Duration
	deadline atomic.Int64 // unix nanoseconds: when the running call must end
	busy     atomic.Bool  // a call is running
	expired  atomic.Bool

	mu     sync.Mutex // guards timer against close racing the watchdog
	timer  *time.Timer
	closed bool
}

func newCallDeadline(parent context.Context, timeout time.Duration) *callDeadline {
	return &callDeadline{parent: parent, timeout: timeout}
}

// begin returns the context of the next call; end must follow.
func (d *callDeadline) begin() *deadlineCtx {
	if d.ctx == nil {
		ctx, cancel := context.WithCancel(d.parent)
		d.ctx = &deadlineCtx{Context: ctx, cancel: cancel, timeout: d.timeout}
		d.ctx.deadline.Store(time.Now().Add(d.timeout).UnixNano())
		d.ctx.busy.Store(true)
		d.ctx.timer = time.AfterFunc(d.timeout, d.ctx.watch)
		return d.ctx
	}
	d.ctx.deadline.Store(time.Now().Add(d.timeout).UnixNano())
	d.ctx.busy.Store(true)
	return d.ctx
}

// end marks the call finished. A context that timed out (or whose parent
// ended) is not used again.
func (d *callDeadline) end() {
	if d.ctx == nil {
		return
	}
	d.ctx.busy.Store(false)
	if d.ctx.Context.Err() != nil {
		d.close()
	}
}

// close releases the worker's context and stops its watchdog.
func (d *callDeadline) close() {
	if d.ctx == nil {
		return
	}
	d.ctx.mu.Lock()
	d.ctx.closed = true
	d.ctx.timer.Stop()
	d.ctx.mu.Unlock()
	d.ctx.cancel()
	d.ctx = nil
}

// watch runs on the watchdog timer: it cancels the context when the
// running call passed its deadline, and otherwise looks again when the
// running call's deadline (or, idle, one timeout from now) comes.
func (c *deadlineCtx) watch() {
	next := c.timeout
	if c.busy.Load() {
		left := time.Until(time.Unix(0, c.deadline.Load()))
		if left <= 0 {
			c.expired.Store(true)
			c.cancel()
			return
		}
		next = left
	}
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(next)
	}
	c.mu.Unlock()
}

// Deadline implements context.Context.
func (c *deadlineCtx) Deadline() (time.Time, bool) {
	return time.Unix(0, c.deadline.Load()), true
}

// Err implements context.Context: DeadlineExceeded once the call timed
// out, the parent's error when the shutdown timeout cancelled it.
func (c *deadlineCtx) Err() error {
	err := c.Context.Err()
	if err != nil && c.expired.Load() {
		return context.DeadlineExceeded
	}
	return err
}
