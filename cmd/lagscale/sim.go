package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lagscale/lagscale/internal/autoscale"
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
		share      = fs.Bool("share", false, "simulate a KIP-932 share group: every member consumes every partition, no rebalance pause; lagscale runs with groupType Share (with --sweep: also as a classic group, and compares the two)")
		shareMax   = fs.Int("share-max-replicas", 0, "lagscale's maxReplicas with --share (0: unbounded)")
		startup    = fs.Duration("startup", 20*time.Second, "pod start-up delay before a new replica consumes")
		poll       = fs.Duration("poll", 5*time.Second, "how often lagscale sees lag")
		kedaLag    = fs.Int64("keda-lag-threshold", 0, "keda-hpa's lagThreshold (0: capacity x SLO)")
		format     = fs.String("format", "table", "output format: table or json")
		plot       = fs.String("plot", "", "write a PNG `FILE` of inflow, lag and replicas per policy")
		sweep      = fs.Bool("sweep", false, "run every built-in scenario (or those --scenario lists, comma-separated) at every --seeds and --capacities and print medians and worst cases")
		seeds      = fs.String("seeds", "1-10", "with --sweep: seeds, as a list (1,2,5) or a range (1-10)")
		capacities = fs.String("capacities", "100,500", "with --sweep: replica capacities in records/s, comma-separated")
		workers    = fs.Int("workers", 0, "with --sweep: runs at once (0: one per CPU)")
		consumer   = fs.String("consumer", "", "EventConsumer manifest `FILE`: lagscale runs its spec.scaling and groupType with the API server's defaults; its maxLagSeconds is the SLO unless --slo is given; its pollIntervalSeconds, groupType and maxReplicas win over --poll, --share and --share-max-replicas")
		without    = fs.String("without", "", "turn mechanisms of lagscale's plan off, comma-separated, for an ablation: trend, growth, recurrence, packing, rebalance-cost, low-since")
		prior      = fs.Float64("prior", 0, "give lagscale a throughputPerReplica of `X` times the true --capacity, where the consumer sets none (0: none, capacity is learned)")
		latency    = fs.Duration("reconcile-latency", time.Second, "how long after a changed snapshot, a Deployment change or a requeue the operator reconciles (whole seconds)")
		family     = fs.String("family", "", "run the randomized family's `SPLIT` (train or test) at --seeds: each seed draws a workload and an operating point")
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
	if *latency < 0 || *latency%time.Second != 0 {
		return fmt.Errorf("--reconcile-latency must be whole seconds, not %s", *latency)
	}
	if *prior < 0 {
		return fmt.Errorf("--prior must not be negative, not %g", *prior)
	}
	var off autoscale.Mechanisms
	for _, name := range strings.Split(*without, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		m, ok := autoscale.MechanismNames[name]
		if !ok {
			return fmt.Errorf("--without: unknown mechanism %q (want trend, growth, recurrence, packing, rebalance-cost or low-since)", name)
		}
		off |= m
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := sim.Config{
		Capacity: *capacity, Noise: *noise, SLO: slo.Seconds(), Seed: *seed,
		Rebalance: secs(*rebalance), Startup: secs(*startup), Poll: max(1, secs(*poll)), KEDALagThreshold: *kedaLag,
		Share: *share, ShareMaxReplicas: *shareMax, Prior: *prior, ReconcileLatency: secs(*latency),
		Without: off,
	}
	if *consumer != "" {
		data, err := os.ReadFile(*consumer)
		if err != nil {
			return fmt.Errorf("reading --consumer: %w", err)
		}
		ec, err := sim.ParseConsumer(data)
		if err != nil {
			return fmt.Errorf("--consumer %s: %w", *consumer, err)
		}
		cfg = sim.WithConsumer(cfg, ec, sim.Flags{SLO: set["slo"]})
	}

	if *family != "" {
		if *family != sim.SplitTrain && *family != sim.SplitTest {
			return fmt.Errorf("--family must be %s or %s, not %q", sim.SplitTrain, sim.SplitTest, *family)
		}
		if *consumer != "" {
			return errors.New("--family draws each run's operating point; it cannot run with --consumer")
		}
		ss, err := parseSeeds(*seeds)
		if err != nil {
			return err
		}
		return runSweep(stdout, sim.SweepParams{Family: *family, Seeds: ss, Config: cfg, Workers: *workers}, *format)
	}

	if *sweep {
		ss, err := parseSeeds(*seeds)
		if err != nil {
			return err
		}
		cs, err := parseCapacities(*capacities)
		if err != nil {
			return err
		}
		names := sim.Scenarios
		if set["scenario"] && *scenario != "all" {
			names = strings.Split(*scenario, ",")
		}
		return runSweep(stdout, sim.SweepParams{Scenarios: names, Seeds: ss, Capacities: cs, Partitions: *partitions, Config: cfg, Workers: *workers}, *format)
	}

	workloads, err := simWorkloads(*trace, *scenario, sim.ScenarioParams{Partitions: *partitions, Capacity: *capacity, Duration: secs(*duration), Seed: *seed})
	if err != nil {
		return err
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
	fmt.Fprintf(out, "scenario %s: %d partitions, %gs, capacity %g/s per replica, SLO %gs, rebalance %ds, startup %ds, poll %ds, reconcile latency %ds, seed %d, lagscale %s\n",
		r.Workload.Name, r.Workload.Partitions, float64(r.Workload.Duration), c.Capacity, c.SLO, c.Rebalance, c.Startup, c.Poll, c.ReconcileLatency, c.Seed, priorNote(c))
	if c.Share {
		fmt.Fprintln(out, shareNote)
	}
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
			params = fmt.Sprintf("none of %d reaches 0.99 (best attainment %.4f)", r.KEDAConfigs, r.KEDABestAttainment)
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

// shareNote labels the KEDA rows of a share-group run: KEDA's Kafka scaler
// reads consumer-group offsets and has no share-group support.
const shareNote = "note: KEDA cannot scale share groups; keda-hpa, keda-best and the goals against them describe a hypothetical KEDA, capped at the partition count"

// kedaParams is a KEDA configuration in one short cell.
func kedaParams(c sim.KEDAConfig) string {
	metric := "fresh"
	if c.MetricCacheSeconds > 0 {
		metric = fmt.Sprintf("cached %ds", c.MetricCacheSeconds)
	}
	return fmt.Sprintf("lagThreshold=%d metric=%s downWindow=%ds tolerance=%g up=%dpods/%d%%", c.LagThreshold, metric, c.ScaleDownStabilizationSeconds, c.Tolerance, c.ScaleUpPods, c.ScaleUpPercent)
}

// priorNote says what lagscale knows of the capacity.
func priorNote(c sim.Config) string {
	if sc := c.Scaling; sc != nil && sc.ThroughputPerReplica != nil {
		return fmt.Sprintf("throughputPerReplica %d (the manifest's)", *sc.ThroughputPerReplica)
	}
	if c.Prior > 0 {
		return fmt.Sprintf("throughputPerReplica %g x capacity", c.Prior)
	}
	return "without throughputPerReplica (capacity learned)"
}

// runSweep runs a sweep and prints its per-scenario medians and worst
// cases, the goals held and every run that misses one, or with json every
// run and the summaries.
//
// With p.Config.Share it runs the sweep twice, as a share group and as a
// classic group, prints the share sweep's table and then lagscale's
// attainment, p99 time lag and replica-seconds in both modes.
func runSweep(out io.Writer, p sim.SweepParams, format string) error {
	start := time.Now()
	runs, err := sim.Sweep(p)
	if err != nil {
		return err
	}
	var compared []sim.ShareComparison
	if p.Config.Share {
		cp := p
		cp.Config.Share, cp.Config.ShareMaxReplicas = false, 0
		classic, err := sim.Sweep(cp)
		if err != nil {
			return err
		}
		if compared, err = sim.CompareShare(classic, runs); err != nil {
			return err
		}
	}
	wall := time.Since(start)
	sums := sim.Summarize(runs)
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		doc := map[string]any{"summaries": nanToNull(sums), "runs": runs, "wall_seconds": wall.Seconds()}
		if compared != nil {
			doc["share_vs_classic"] = compared
		}
		return enc.Encode(doc)
	}
	c := p.Config
	mode := ""
	if c.Share {
		mode = "share group (no rebalance pause, every member on every partition), lagscale maxReplicas "
		if c.ShareMaxReplicas > 0 {
			mode += strconv.Itoa(c.ShareMaxReplicas) + "; "
		} else {
			mode += "unbounded; "
		}
	}
	if p.Family != "" {
		fmt.Fprintf(out, "family %s: seeds %s = %d runs, each drawing its workload shape and operating point; reconcile latency %ds, lagscale %s; wall time %s\n",
			p.Family, joinSeeds(p.Seeds), len(runs), c.ReconcileLatency, priorNote(c), wall.Round(100*time.Millisecond))
	} else {
		fmt.Fprintf(out, "sweep: %d scenarios x seeds %s x capacities %s = %d runs; %s%d partitions, SLO %gs, noise %g, rebalance %ds, startup %ds, poll %ds, reconcile latency %ds, lagscale %s; wall time %s\n",
			len(p.Scenarios), joinSeeds(p.Seeds), joinFloats(p.Capacities), len(runs), mode, p.Partitions, c.SLO, c.Noise, c.Rebalance, c.Startup, c.Poll, c.ReconcileLatency, priorNote(c), wall.Round(100*time.Millisecond))
	}
	if c.Share {
		fmt.Fprintln(out, shareNote)
	}
	fmt.Fprintln(out, "median (worst) per scenario; cost = lagscale replica-seconds / the other's, events = lagscale scale events / keda-hpa's")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\truns\tattainment\tcost/keda-best\tevents/keda-hpa\tcost/oracle\tcost/oracle-partitions\tkeda-best/oracle-partitions\tgoals held: attain, undominated, cost (of runs with keda-best)\tfallback (of runs without)\tevents, all\t")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d, %d, %d of %d\t%d of %d\t%d, %d of %d\t\n", s.Scenario, s.Runs,
			spreadCell(s.Attainment, 4), spreadCell(s.Cost, 3), spreadCell(s.Events, 2), spreadCell(s.Oracle, 2), spreadCell(s.OraclePartitions, 2), spreadCell(s.KEDABestOracle, 2),
			s.Held.Attainment, s.Held.NotDominated, s.Held.Cost, s.Runs-s.NoKEDABest, s.Held.Fallback, s.NoKEDABest, s.Held.Events, s.Held.All, s.Runs)
	}
	tw.Flush()
	for _, s := range sums {
		if s.NoKEDABest > 0 {
			fmt.Fprintf(out, "%s: no KEDA configuration reaches 0.99 on %d of %d runs (the fallback goal applies there)\n", s.Scenario, s.NoKEDABest, s.Runs)
		}
	}
	if f := sim.Failures(runs); len(f) > 0 {
		fmt.Fprintf(out, "runs missing a goal (%d):\n", len(f))
		for _, l := range f {
			fmt.Fprintln(out, "  "+l)
		}
	} else {
		fmt.Fprintln(out, "every goal holds on every run")
	}
	if compared != nil {
		fmt.Fprintln(out, "lagscale as a share group against a classic group on the same runs, median (worst); share/classic = replica-seconds per run")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "scenario\truns\tattainment classic\tattainment share\tp99 time lag classic\tp99 time lag share\treplica-s classic\treplica-s share\tshare/classic\t")
		for _, s := range compared {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Scenario, s.Runs,
				spreadCell(s.ClassicAttainment, 4), spreadCell(s.ShareAttainment, 4), spreadCell(s.ClassicP99, 0), spreadCell(s.ShareP99, 0),
				spreadCell(s.ClassicReplicaSeconds, 0), spreadCell(s.ShareReplicaSeconds, 0), spreadCell(s.Cost, 2))
		}
		tw.Flush()
	}
	return nil
}

func spreadCell(s sim.Spread, digits int) string {
	if math.IsNaN(s.Median) {
		return "-"
	}
	return fmt.Sprintf("%.*f (%.*f)", digits, s.Median, digits, s.Worst)
}

// nanToNull round-trips v through a form JSON can hold: a spread without
// runs (NaN) becomes null.
func nanToNull(sums []sim.ScenarioSummary) []map[string]any {
	out := make([]map[string]any, 0, len(sums))
	for _, s := range sums {
		sp := func(x sim.Spread) any {
			if math.IsNaN(x.Median) {
				return nil
			}
			return x
		}
		out = append(out, map[string]any{
			"scenario": s.Scenario, "runs": s.Runs, "no_keda_best": s.NoKEDABest, "held": s.Held,
			"attainment": sp(s.Attainment), "cost_vs_keda_best": sp(s.Cost), "events_vs_keda_hpa": sp(s.Events),
			"cost_vs_oracle": sp(s.Oracle), "cost_vs_oracle_partitions": sp(s.OraclePartitions), "keda_best_vs_oracle_partitions": sp(s.KEDABestOracle),
		})
	}
	return out
}

// parseSeeds reads "1-10" or "1,2,5".
func parseSeeds(v string) ([]uint64, error) {
	if a, b, ok := strings.Cut(v, "-"); ok {
		lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
		hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
		if err1 != nil || err2 != nil || hi < lo {
			return nil, fmt.Errorf("--seeds %q: want a range like 1-10 or a list like 1,2,5", v)
		}
		var out []uint64
		for s := lo; s <= hi; s++ {
			out = append(out, s)
		}
		return out, nil
	}
	var out []uint64
	for _, f := range strings.Split(v, ",") {
		s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--seeds %q: want a range like 1-10 or a list like 1,2,5", v)
		}
		out = append(out, s)
	}
	return out, nil
}

// parseCapacities reads "100,500".
func parseCapacities(v string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(v, ",") {
		c, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || c <= 0 || math.IsInf(c, 0) {
			return nil, fmt.Errorf("--capacities %q: want positive records/s, comma-separated", v)
		}
		out = append(out, c)
	}
	return out, nil
}

func joinSeeds(s []uint64) string {
	if n := len(s); n > 2 && s[n-1]-s[0] == uint64(n-1) {
		return fmt.Sprintf("%d..%d", s[0], s[n-1])
	}
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = strconv.FormatUint(v, 10)
	}
	return strings.Join(parts, ",")
}

func joinFloats(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// simWorkloads are the workloads of one `lagscale sim` run: the trace FILE
// when one is given, else the named scenario, or every one for "all".
func simWorkloads(trace, scenario string, p sim.ScenarioParams) ([]sim.Workload, error) {
	if trace != "" {
		f, err := os.Open(trace)
		if err != nil {
			return nil, fmt.Errorf("opening trace: %w", err)
		}
		defer f.Close()
		w, err := sim.ReadTrace(f, trace, p.Partitions, p.Duration)
		if err != nil {
			return nil, err
		}
		return []sim.Workload{w}, nil
	}
	names := []string{scenario}
	if scenario == "all" {
		names = sim.Scenarios
	}
	var out []sim.Workload
	for _, name := range names {
		w, err := sim.Scenario(name, p)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
