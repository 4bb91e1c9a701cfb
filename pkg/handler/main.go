package handler

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ExitForced is the exit code after a second SIGTERM or SIGINT: the
// process stops at once and unfinished records stay uncommitted, so the
// next owner handles them again.
const ExitForced = 2

// SignalContext returns a context cancelled by the first SIGTERM or
// SIGINT. A second signal exits the process at once with ExitForced,
// without committing unfinished work.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			signal.Stop(sigs)
			return
		}
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "handler: second signal, exiting without committing unfinished work")
		os.Exit(ExitForced)
	}()
	return ctx, cancel
}

// Main runs fn until SIGTERM or SIGINT and exits the process: 0 after a
// graceful shutdown, 1 when the handler cannot start (the error is printed
// on one line), ExitForced after a second signal.
func Main(fn Func, opts ...Option) {
	ctx, cancel := SignalContext()
	err := Run(ctx, fn, opts...)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
