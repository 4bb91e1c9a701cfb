package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/lagscale/lagscale/internal/sim"
)

// runSim is `lagscale sim`: it runs lagscale's TimeLag policy, KEDA+HPA at
// its defaults, every configuration of a KEDA grid and two oracles side by
// side on one workload and prints their SLO attainment and cost.
func runSim(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		scenario   = fs.String("scenario", "step", "built-in scenario: step, diurnal, spikes, hot-partition, slow-handler, or all")
		trace      = fs.String("trace", "", "CSV trace `FILE` with header seconds,partition,rate (overrides --scenario)")
		writeTrace = fs.String("write-trace", "", "write the chosen scenario as a trace `FILE` and exit")
		partitions = fs.Int("partitions", 24, "partition count")
		capacity   = fs.Float64("capacity", 100, "one replica's capacity in records/s")
		noise      = fs.Float64("noise", 0.1, "relative per-second capacity noise")
		slo        = fs.Duration("slo", 30*time.Second, "time-lag objective")
		duration   = fs.Duration("duration", 0, "run length (0: the scenario's own)")
		seed       = fs.Uint64("seed", 1, "random seed")
		rebalance  = fs.Duration("rebalance", 5*time.Second, "stop-the-world pause on every membership change")
		startup    = fs.Duration("startup", 20*time.Second, "pod start-up delay before a new replica consumes")
		poll       = fs.Duration("poll", 5*time.Second, "how often lagscale sees lag")
		kedaLag    = fs.Int64("keda-lag-threshold", 0, "keda-hpa's lagThreshold (0: capacity x SLO)")
		format     = fs.String("format", "table", "output format: table or json")
		plot       = fs.String("plot", "", "write a PNG `FILE` of inflow, lag and replicas per policy")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("--format must be table or json, not %q", *format)
	}
	secs := func(d time.Duration) int { return int(d.Round(time.Second) / time.Second) }
	cfg := sim.Config{
		Capacity: *capacity, Noise: *noise, SLO: slo.Seconds(), Seed: *seed,
		Rebalance: secs(*rebalance), Startup: secs(*startup), Poll: max(1, secs(*poll)), KEDALagThreshold: *kedaLag,
	}

	var workloads []sim.Workload
	if *trace != "" {
		f, err := os.Open(*trace)
		if err != nil {
			return fmt.Errorf("opening trace: %w", err)
		}
		w, err := sim.ReadTrace(f, *trace, *partitions, secs(*duration))
		f.Close()
		if err != nil {
			return err
		}
		workloads = append(workloads, w)
	} else {
		names := []string{*scenario}
		if *scenario == "all" {
			names = sim.Scenarios
		}
		for _, name := range names {
			w, err := sim.Scenario(name, sim.ScenarioParams{Partitions: *partitions, Capacity: *capacity, Duration: secs(*duration), Seed: *seed})
			if err != nil {
				return err
			}
			workloads = append(workloads, w)
		}
	}
	if *writeTrace != "" {
		if len(workloads) != 1 {
			return fmt.Errorf("--write-trace needs one scenario, not %q", *scenario)
		}
		f, err := os.Create(*writeTrace)
		if err != nil {
			return fmt.Errorf("creating trace: %w", err)
		}
		if err := sim.WriteTrace(f, workloads[0]); err != nil {
			f.Close()
			return fmt.Errorf("writing trace: %w", err)
		}
		if workloads[0].CapacityFactor != nil {
			fmt.Fprintf(stdout, "note: the trace holds the rates only; %s's capacity change is not part of it\n", workloads[0].Name)
		}
		return f.Close()
	}

	results := make([]sim.Result, 0, len(workloads))
	for _, w := range workloads {
		results = append(results, sim.Run(cfg, w))
	}
	if *plot != "" {
		if len(results) != 1 {
			return fmt.Errorf("--plot needs one scenario, not %q", *scenario)
		}
		if err := sim.Plot(*plot, results[0]); err != nil {
			return fmt.Errorf("plotting: %w", err)
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if len(results) == 1 {
			return enc.Encode(results[0].JSON())
		}
		byName := map[string]map[string]any{}
		for _, r := range results {
			byName[r.Workload.Name] = r.JSON()
		}
		return enc.Encode(byName)
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printTable(stdout, r)
	}
	return nil
}

// printTable writes one workload's results, policies in report order,
// then keda-frontier.
func printTable(out io.Writer, r sim.Result) {
	c := r.Config
	fmt.Fprintf(out, "scenario %s: %d partitions, %gs, capacity %g/s per replica, SLO %gs, rebalance %ds, startup %ds, poll %ds, seed %d\n",
		r.Workload.Name, r.Workload.Partitions, float64(r.Workload.Duration), c.Capacity, c.SLO, c.Rebalance, c.Startup, c.Poll, c.Seed)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tslo_attainment\tp99_lag_seconds\tmax_lag_seconds\treplica_seconds\tscale_events\trebalance_seconds\tkeda_parameters\t")
	row := func(name string, m *sim.Metrics, params string) {
		if m == nil {
			// No configuration reaches 0.99: a result in itself.
			fmt.Fprintf(tw, "%s\tnull\t-\t-\t-\t-\t-\t%s\t\n", name, params)
			return
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.0f\t%.0f\t%d\t%d\t%d\t%s\t\n", name, m.SLOAttainment, m.P99LagSeconds, m.MaxLagSeconds, m.ReplicaSeconds, m.ScaleEvents, m.RebalanceSeconds, params)
	}
	for _, p := range sim.Policies {
		params := "-"
		switch p {
		case sim.PolicyKEDA:
			params = kedaParams(r.KEDA)
		case sim.PolicyKEDABest:
			params = fmt.Sprintf("none of %d reaches 0.99", r.KEDAConfigs)
			if r.KEDABest != nil {
				params = kedaParams(r.KEDABest.Parameters)
			}
		}
		row(p, r.Metrics[p], params)
	}
	for i, f := range r.KEDAFrontier {
		row(fmt.Sprintf("%s[%d]", sim.PolicyKEDAFrontier, i), &f.Metrics, kedaParams(f.Parameters))
	}
	tw.Flush()
}

// kedaParams is a KEDA configuration in one short cell.
func kedaParams(c sim.KEDAConfig) string {
	metric := "fresh"
	if c.MetricCacheSeconds > 0 {
		metric = fmt.Sprintf("cached %ds", c.MetricCacheSeconds)
	}
	return fmt.Sprintf("lagThreshold=%d metric=%s downWindow=%ds tolerance=%g", c.LagThreshold, metric, c.ScaleDownStabilizationSeconds, c.Tolerance)
}
