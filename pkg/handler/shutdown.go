package handler

import (
	"context"
	"time"
)

// watchShutdown waits for ctx to end. Then it marks the consumer stopping
// and not ready, logs msg, and calls expire once if the shutdown timeout
// passes first. The returned done ends the watch and waits until it has,
// so that expire is never called after done returns.
func (c *Consumer) watchShutdown(ctx context.Context, msg, expiredMsg string, expire func()) (done func()) {
	finished := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		c.stopping.Store(true)
		c.ready.Store(false)
		c.log.Info(msg, "timeout", c.o.shutdownTimeout.String())
		t := time.NewTimer(c.o.shutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			c.log.Info(expiredMsg)
			expire()
		case <-finished:
		}
	}()
	return func() {
		close(finished)
		<-stopped
	}
}
