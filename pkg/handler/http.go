package handler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// This file holds the health and metrics HTTP server of a running Consumer.

func (c *Consumer) serveHTTP() (func(), error) {
	if c.cfg.HTTPAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", c.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("handler: listening for health and metrics (%s): %w", EnvHTTPAddr, err)
	}
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error(err, "Health and metrics server stopped")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
