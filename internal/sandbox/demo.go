package sandbox

import (
	"context"
	"io"
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	Out       io.Writer
	ChartPath string
}

// DemoResult summarises a demo run.
type DemoResult struct{}

// RunDemo runs the demo.
func RunDemo(ctx context.Context, s *Sandbox, o DemoOptions) (*DemoResult, error) {
	return &DemoResult{}, nil
}
