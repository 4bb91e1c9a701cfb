package sim

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// TraceRow is one line of a trace: from Second on, Partition receives Rate
// records/s until its next row.
type TraceRow struct {
	// Second is when the rate starts, counted from the start of the run.
	Second int
	// Partition is the partition index, from 0.
	Partition int
	// Rate is records per second.
	Rate float64
}

// Workload is what the simulated topic receives, and how fast a replica
// is, over time.
type Workload struct {
	// Name is the scenario name or the trace file, for output.
	Name string
	// Partitions is the partition count.
	Partitions int
	// Duration is the length of the run in seconds.
	Duration int
	// Rows are the rate changes, sorted by second then partition.
	Rows []TraceRow
	// CapacityFactor scales every replica's capacity at a second; nil
	// means 1. A trace file cannot express it, so only built-in
	// scenarios (slow-handler) set it.
	CapacityFactor func(second int) float64
}

// rates expands the rows into a per-second, per-partition rate table.
func (w Workload) rates() [][]float64 {
	out := make([][]float64, w.Duration)
	cur := make([]float64, w.Partitions)
	rows := slices.Clone(w.Rows)
	slices.SortStableFunc(rows, func(a, b TraceRow) int { return cmp.Compare(a.Second, b.Second) })
	i := 0
	for s := range w.Duration {
		for i < len(rows) && rows[i].Second <= s {
			if p := rows[i].Partition; p >= 0 && p < w.Partitions {
				cur[p] = rows[i].Rate
			}
			i++
		}
		out[s] = slices.Clone(cur)
	}
	return out
}

func (w Workload) capacityFactor(s int) float64 {
	if w.CapacityFactor == nil {
		return 1
	}
	return w.CapacityFactor(s)
}

// ReadTrace parses a CSV trace with the header "seconds,partition,rate".
// The partition count is one more than the highest partition named unless
// partitions is larger; the duration is the given one, or the last row's
// second plus ten minutes when duration is 0.
func ReadTrace(r io.Reader, name string, partitions, duration int) (Workload, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = 3
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return Workload{}, fmt.Errorf("reading trace %s: %w", name, err)
	}
	if strings.Join(header, ",") != "seconds,partition,rate" {
		return Workload{}, fmt.Errorf("trace %s: header is %q, want \"seconds,partition,rate\"", name, strings.Join(header, ","))
	}
	w := Workload{Name: name, Partitions: partitions, Duration: duration}
	last := 0
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Workload{}, fmt.Errorf("trace %s: %w", name, err)
		}
		s, err1 := strconv.Atoi(rec[0])
		p, err2 := strconv.Atoi(rec[1])
		rate, err3 := strconv.ParseFloat(rec[2], 64)
		if err := cmp.Or(err1, err2, err3); err != nil || s < 0 || p < 0 || rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
			return Workload{}, fmt.Errorf("trace %s line %d: want non-negative seconds, partition and rate, got %q", name, line, strings.Join(rec, ","))
		}
		w.Rows = append(w.Rows, TraceRow{Second: s, Partition: p, Rate: rate})
		w.Partitions = max(w.Partitions, p+1)
		last = max(last, s)
	}
	if len(w.Rows) == 0 {
		return Workload{}, fmt.Errorf("trace %s has no rows", name)
	}
	if w.Duration <= 0 {
		w.Duration = last + 600
	}
	return w, nil
}

// WriteTrace writes w's rows as a CSV trace that ReadTrace reads back to
// the same rows. Rates are written with the shortest exact representation.
func WriteTrace(out io.Writer, w Workload) error {
	cw := csv.NewWriter(out)
	if err := cw.Write([]string{"seconds", "partition", "rate"}); err != nil {
		return err
	}
	for _, r := range w.Rows {
		if err := cw.Write([]string{strconv.Itoa(r.Second), strconv.Itoa(r.Partition), strconv.FormatFloat(r.Rate, 'g', -1, 64)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Scenarios are the built-in scenario names, in the order they are
// reported.
var Scenarios = []string{"step", "diurnal", "spikes", "hot-partition", "slow-handler"}

// ScenarioParams shape a built-in scenario.
type ScenarioParams struct {
	// Partitions is the partition count.
	Partitions int
	// Capacity is one replica's records/s; scenario loads are multiples
	// of it so that every scenario needs scaling whatever the capacity.
	Capacity float64
	// Duration is the run length in seconds; 0 picks the scenario's own.
	Duration int
	// Seed drives the random parts (spike times).
	Seed uint64
}

// Scenario builds a built-in scenario by name.
func Scenario(name string, p ScenarioParams) (Workload, error) {
	w := Workload{Name: name, Partitions: p.Partitions, Duration: p.Duration}
	c := p.Capacity
	P := p.Partitions
	uniformAt := func(s int, total float64) {
		for i := range P {
			w.Rows = append(w.Rows, TraceRow{Second: s, Partition: i, Rate: total / float64(P)})
		}
	}
	switch name {
	case "step":
		// 2 replicas' worth, then a 5x burst for 10 minutes.
		if w.Duration == 0 {
			w.Duration = 3600
		}
		burst := w.Duration / 3
		uniformAt(0, 2*c)
		uniformAt(burst, 10*c)
		uniformAt(burst+600, 2*c)
	case "diurnal":
		// A day compressed into the run: a sine between 1 and 9 replicas'
		// worth, in one-minute steps.
		if w.Duration == 0 {
			w.Duration = 4 * 3600
		}
		for s := 0; s < w.Duration; s += 60 {
			phase := 2 * math.Pi * float64(s) / float64(w.Duration)
			uniformAt(s, c*(5-4*math.Cos(phase)))
		}
	case "spikes":
		// 1.5 replicas' worth with short random bursts of 3x to 6x, 20 to
		// 90 seconds long, every 4 to 10 minutes.
		if w.Duration == 0 {
			w.Duration = 3600
		}
		rng := rand.New(rand.NewPCG(p.Seed, 0x5eed))
		uniformAt(0, 1.5*c)
		for s := 120 + rng.IntN(240); s < w.Duration-120; s += 240 + rng.IntN(360) {
			length := 20 + rng.IntN(71)
			uniformAt(s, 1.5*c*float64(3+rng.IntN(4)))
			uniformAt(s+length, 1.5*c)
		}
	case "hot-partition":
		// Partition 0 at 6x each other partition; the load rises by half
		// for a third of the run, when the hot partition alone needs 3/4
		// of a replica.
		if w.Duration == 0 {
			w.Duration = 3600
		}
		each := 0.75 * c / 9
		skewed := func(s int, f float64) {
			for i := range P {
				r := each * f
				if i == 0 {
					r *= 6
				}
				w.Rows = append(w.Rows, TraceRow{Second: s, Partition: i, Rate: r})
			}
		}
		skewed(0, 1)
		skewed(w.Duration/3, 1.5)
		skewed(2*w.Duration/3, 1)
	case "slow-handler":
		// Steady 3 replicas' worth while the handler's capacity halves for
		// 20 minutes (a slower dependency), which only the consumption
		// rate reveals.
		if w.Duration == 0 {
			w.Duration = 3600
		}
		uniformAt(0, 3*c)
		from, to := w.Duration/3, 2*w.Duration/3
		w.CapacityFactor = func(s int) float64 {
			if s >= from && s < to {
				return 0.5
			}
			return 1
		}
	default:
		return Workload{}, fmt.Errorf("unknown scenario %q (want one of %s)", name, strings.Join(Scenarios, ", "))
	}
	return w, nil
}
