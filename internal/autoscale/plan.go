package autoscale

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// start is what a plan starts from: the group as it runs now.
type start struct {
	// cur is the replicas the Deployment has.
	cur int32
	// members are the group's members now.
	members int
	// joinIn is how long until the pods of a scale-up still joining are
	// members, 0 when none is.
	joinIn time.Duration
	// activation is the lag above which a consumer at zero wakes.
	activation int64
	// hi is the most replicas the bounds allow.
	hi int32
}

// planStart is the plan's starting point for a decision at in.Now.
func planStart(in Input, st State, cur, hi int32, obs Observation) start {
	s := start{cur: cur, members: obs.Members, activation: in.Spec.ActivationLag, hi: hi}
	if obs.Members < int(cur) {
		s.joinIn = scaleUpDelay(in.Spec, st.Model)
		if j := st.Scale.JoiningSince; !j.IsZero() {
			s.joinIn = max(0, j.Add(s.joinIn).Sub(in.Now))
		}
	}
	return s
}

// plan is the fourth stage, a model-predictive decision: for each replica
// count it predicts the time lag over the next few minutes from the
// forecast inflow, the learned capacity, scale-up delay and rebalance
// pause, with ceil(P/r) partitions to the busiest consumer, and it
// recommends the cheapest count whose time lag stays under the target,
// each change priced at what its rebalance costs; a scale-up that does
// as well one poll later waits for that poll. Where no count keeps it
// under, the count that misses it least, and the fewest of those.
func plan(spec Spec, m Model, f inflowForecast, o Observation, s start, low func(int32) time.Duration) recommendation {
	target := spec.MaxLagSeconds
	measured := fmt.Sprintf("time lag %s %s %s target; inflow %s/s%s", secs(o.TimeLagSeconds), relation(o.TimeLagSeconds, target), secs(target), num(f.total), f.describe())
	// A consumer at zero wakes only on lag above activationLag, like
	// KEDA's activation; a running one is recommended zero only when there
	// is nothing to do at all (choose still waits for the window).
	if s.cur == 0 && o.TotalLag <= s.activation {
		return recommendation{raw: 0, why: fmt.Sprintf("%s, lag %d <= activation %d -> 0 replicas", measured, o.TotalLag, s.activation)}
	}
	if o.TotalLag == 0 && f.total <= 0 && f.recurring == nil {
		return recommendation{raw: 0, why: measured + ", no lag -> 0 replicas"}
	}
	if m.Capacity <= 0 {
		// Nothing consumed yet: a replica's capacity is unknown until the
		// group has run. Start one, or keep what starts.
		n := max(s.cur, 1)
		return recommendation{raw: n, why: fmt.Sprintf("%s, capacity not seen yet (no throughputPerReplica) -> %s", measured, replicas(n))}
	}
	g := newGroupModel(spec, m, f, o)
	best, need, ahead := g.choose(s, low)
	why := fmt.Sprintf("%s; %s -> %s", measured, g.describe(m, spec.ThroughputPerReplica, best), replicas(best.n))
	if ahead && best.n > s.cur {
		r := f.recurring
		why = fmt.Sprintf("%s; scaling to %d ahead of the batch expected at %s (%s)", why, best.n, r.next.UTC().Format("15:04:05"), r)
	}
	return recommendation{raw: best.n, need: need, why: why}
}

// groupModel is the group as the plan simulates it.
type groupModel struct {
	// capacity is what a plan counts on per replica, records/s.
	capacity float64
	// delay is the scale-up delay, pause the rebalance pause.
	delay, pause float64
	// allow is the time lag a plan may reach: the target, less the poll
	// interval over which the lag grows unseen.
	allow float64
	// react is how long until a decision at the next poll would have its
	// pods consuming: the forecast's trend is followed that far, no
	// further, since a later decision sees it.
	react float64
	// horizon is how far ahead a plan is predicted and paid for.
	horizon float64
	// lags, rates and ages are the partitions' backlog, inflow and time
	// lag, hottest first (lag plus the inflow over the window).
	lags, rates, ages []float64
	share             bool
	// hi is the most replicas the bounds allow.
	hi int32
	// lowSince, wait and missBudget are false when the ablation turns
	// their mechanisms off.
	lowSince, wait, missBudget bool
	f                          inflowForecast
	dt                         float64
}

// candidate is one replica count's predicted run.
type candidate struct {
	n int32
	// over is the time lag's excess over allow, integrated over the
	// window (seconds x seconds); 0 when it stays under.
	over float64
	// peak is the highest predicted time lag.
	peak float64
	// backlog is the busiest consumer's backlog at the horizon, records.
	backlog float64
	// waits is the count a scale-up waits one poll for, 0 when none does.
	waits int32
	// held is how long fewer replicas would miss the target if the load
	// came back, when that stopped a scale-down; 0 otherwise.
	held float64
}

func newGroupModel(spec Spec, m Model, f inflowForecast, o Observation) *groupModel {
	poll := f.poll.Seconds()
	g := &groupModel{
		capacity: m.Capacity,
		delay:    scaleUpDelay(spec, m).Seconds(),
		pause:    rebalancePause(m, f.poll).Seconds(),
		share:    spec.Share,
		f:        f,
	}
	if m.Saturated || spec.ThroughputPerReplica > 0 {
		// A measured capacity is an average of noisy samples, and a prior
		// a guess; a lower bound, what the group was seen to consume,
		// needs no margin.
		g.capacity *= planUtilization
	}
	target := spec.MaxLagSeconds
	if spec.Without&MechRebalanceCost != 0 {
		g.pause = 0
	}
	g.lowSince = spec.Without&MechLowSince == 0
	g.missBudget = spec.Without&MechMissBudget == 0
	// A scale-up waits a poll only on a measured scale-up delay: an
	// assumed one may be far shorter, and the poll it waits for then
	// comes too late.
	g.wait = spec.Without&MechWait == 0 && m.ScaleUpDelay > 0
	g.allow = planAllowance * target
	g.react = poll + g.delay + g.pause
	g.horizon = min(max(g.react+target, minHorizon.Seconds()), maxHorizon.Seconds())
	g.dt = max(1, g.horizon/planSteps)
	type part struct{ lag, rate, age float64 }
	var parts []part
	if len(o.Partitions) > 0 && len(f.rates) == len(o.Partitions) {
		for i, p := range o.Partitions {
			parts = append(parts, part{float64(p.Lag), f.rates[i], p.TimeLagSeconds})
		}
	} else if n := max(o.PartitionCount, 1); true {
		for range n {
			parts = append(parts, part{float64(o.TotalLag) / float64(n), f.total / float64(n), o.TimeLagSeconds})
		}
	}
	if spec.Without&MechPacking != 0 {
		// Load spread evenly: every partition carries the average.
		var lag, rate, age float64
		for _, p := range parts {
			lag, rate, age = lag+p.lag, rate+p.rate, max(age, p.age)
		}
		for i := range parts {
			parts[i] = part{lag / float64(len(parts)), rate / float64(len(parts)), age}
		}
	}
	slices.SortFunc(parts, func(a, b part) int {
		return cmp.Compare(b.lag+b.rate*g.horizon, a.lag+a.rate*g.horizon)
	})
	for _, p := range parts {
		g.lags = append(g.lags, p.lag)
		g.rates = append(g.rates, p.rate)
		g.ages = append(g.ages, p.age)
	}
	return g
}

// partitions is the partition count the model packs.
func (g *groupModel) partitions() int { return len(g.lags) }

// owned is how many partitions the busiest of n members owns, the
// hottest first, and the capacity that owns them: the ceil(P/n) hottest
// for one replica, since assignors balance partition counts, not load,
// and may put the hottest together; in a share group every partition,
// for all n members.
func (g *groupModel) owned(n int) (int, float64) {
	P := g.partitions()
	if n <= 0 {
		return P, 0
	}
	if g.share {
		return P, float64(n) * g.capacity
	}
	return (P + n - 1) / n, g.capacity
}

// simulate predicts the time lag of the busiest consumer when the group
// runs from members now, changes to n members at joinAt seconds (a
// rebalance pause follows), and keeps n to the end of the window. A
// change down starts its pause at once. The busiest consumer shares its
// capacity among its partitions as a consumer fetching from all of them
// does: evenly, a partition with less backlog than its share leaving the
// rest to the others. So a hot partition behind a saturated consumer ages
// faster than the consumer's backlog as a whole.
func (g *groupModel) simulate(from, n int, joinAt float64, change bool) candidate {
	c := candidate{n: int32(n)}
	k, capacity := g.owned(from)
	P := g.partitions()
	backlog := slices.Clone(g.lags)
	age := slices.Clone(g.ages)
	in := make([]float64, P)
	served := make([]float64, P)
	order := make([]int, 0, P)
	for i := range k {
		order = append(order, i)
	}
	pauseFrom, pauseTo := math.Inf(1), math.Inf(1)
	if change {
		pauseFrom, pauseTo = joinAt, joinAt+g.pause
	}
	switched := false
	for t := 0.0; t < g.horizon; t += g.dt {
		if !switched && change && t >= joinAt {
			// The busiest of the new members owns its share; each
			// partition keeps its backlog, which the other members held
			// steady meanwhile.
			k, capacity = g.owned(n)
			order = order[:0]
			for i := range k {
				order = append(order, i)
			}
			switched = true
		}
		ft := g.forecastTime(t)
		scale := g.f.scale(ft)
		for i := range k {
			in[i] = g.rates[i] * scale
			if g.f.total <= 0 {
				in[i] = g.f.at(ft) / float64(P)
			}
		}
		mu := capacity
		if t >= pauseFrom && t < pauseTo {
			mu = 0
		}
		g.fill(backlog[:k], in[:k], served[:k], order, mu*g.dt)
		c.backlog = 0
		oldest := 0.0
		for i := range k {
			next := max(0, backlog[i]+in[i]*g.dt-served[i])
			rate := served[i] / g.dt
			switch {
			case next <= 0:
				age[i] = 0
			case backlog[i] <= 0:
				age[i] = g.dt * max(0, 1-rate/math.Max(in[i], 1e-9))
			default:
				age[i] = max(0, age[i]+g.dt*(1-rate*age[i]/backlog[i]))
			}
			backlog[i] = next
			c.backlog += next
			oldest = max(oldest, age[i])
		}
		c.peak = max(c.peak, oldest)
		c.over += max(0, oldest-g.allow) * g.dt
	}
	return c
}

// fill shares budget records among partitions with backlog plus inflow
// over the step, evenly, by water filling: a partition with less than
// its share empties and leaves the rest to the others. order holds the
// partitions' indexes, sorted by what each has to give at the last step:
// it changes little from step to step, so an insertion sort keeps it
// sorted in about one pass.
func (g *groupModel) fill(backlog, in, served []float64, order []int, budget float64) {
	avail := func(i int) float64 { return backlog[i] + in[i]*g.dt }
	total := 0.0
	for i := range backlog {
		served[i] = avail(i)
		total += served[i]
	}
	if total <= budget {
		// Every partition empties: the consumer keeps up.
		return
	}
	for j := 1; j < len(order); j++ {
		for m := j; m > 0 && served[order[m]] < served[order[m-1]]; m-- {
			order[m], order[m-1] = order[m-1], order[m]
		}
	}
	for j, i := range order {
		take := min(served[i], budget/float64(len(order)-j))
		served[i] = take
		budget -= take
	}
}

// changePrice is what a change from cur to n replicas costs, in
// replica-seconds: every member of the larger group pauses for the
// rebalance, times changeWeight.
func (g *groupModel) changePrice(cur, n int32) float64 {
	if cur == n || g.share {
		return 0
	}
	return changeWeight * g.pause * float64(max(cur, n))
}

// counts are the replica counts worth considering up to most: in a
// consumer group the fewest replicas that give each member at most k
// partitions, for every k; in a share group every count.
func (g *groupModel) counts(most int32) []int32 {
	var out []int32
	P := g.partitions()
	if g.share || P <= 0 {
		// Every count up to 256, then steps of 5%: a bisection over
		// millions of counts would still be cheap, the list would not.
		for n := int32(1); n <= most && n > 0; {
			out = append(out, n)
			if n < 256 {
				n++
			} else {
				n = replicaCount(math.Ceil(float64(n) * 1.05))
			}
		}
		return out
	}
	for k := P; k >= 1; k-- {
		n := int32((P + k - 1) / k)
		if n > most {
			break
		}
		if len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

// choose runs the plan. It predicts the current count kept, the most the
// group can use, and by bisection the smallest count that does as well as
// the better of those two: the need. Above the current count, the need is
// the answer. Below it, replicas are removed only when that pays: the
// replicas saved over the time the load is expected to stay low must
// outweigh two changes, this one and the one that adds them back. How long
// the load stays low is not known; it is taken to be as long as it has
// already been low (low), or until the next recurring burst. ahead is true
// when only the recurring burst asks for more than runs.
func (g *groupModel) choose(s start, low func(int32) time.Duration) (c candidate, need int32, ahead bool) {
	cur := int32(max(s.cur, 0))
	g.hi = max(s.hi, 1)
	keep := g.simulate(s.members, int(cur), s.joinIn.Seconds(), s.joinIn > 0 || int32(s.members) != cur)
	up := slices.DeleteFunc(g.counts(g.most(cur)), func(n int32) bool { return n <= cur })
	tryUp := func(n int32) candidate { return g.simulate(s.members, int(n), g.delay, true) }
	tryDown := func(n int32) candidate { return g.simulate(s.members, int(n), 0, true) }
	most := keep
	if len(up) > 0 {
		most = tryUp(up[len(up)-1])
	}
	// Where some count keeps the time lag under the target, only those
	// that do are good enough. Where none does, those that come within
	// missTolerance of the most replicas' prediction are: as close to the target over
	// the horizon (a backlog that drains within it, sooner with more
	// replicas), and with as few records left at its end (an inflow that
	// outruns every count, where the oldest record's age no longer tells
	// them apart).
	good := func(c candidate) bool { return c.over == 0 }
	if most.over > 0 && keep.over > 0 {
		good = func(c candidate) bool {
			return c.over <= most.over*missTolerance+1 && c.backlog <= most.backlog*missTolerance+1
		}
	}
	if !good(keep) {
		pick := g.smallest(up, tryUp, good)
		if pick.n == 0 {
			return keep, cur, false
		}
		if most.over == 0 && cur > 0 && g.waitPays(s, pick.n) {
			// The same scale-up made at the next poll keeps the target
			// too: waiting costs nothing the plan can see, and a load
			// that has eased by then needs no change at all.
			keep.waits = pick.n
			return keep, pick.n, false
		}
		ahead = g.f.recurring != nil && good(g.withoutRecurrence().simulate(s.members, int(cur), s.joinIn.Seconds(), s.joinIn > 0))
		return pick, pick.n, ahead
	}
	if cur <= 1 {
		return keep, cur, false
	}
	fewest := g.smallest(g.counts(cur-1), tryDown, good)
	if fewest.n == 0 {
		return keep, cur, false
	}
	best, gain := keep, 0.0
	// held is the miss that stopped the largest scale-down that paid,
	// at heldAt replicas.
	held, heldAt := 0.0, int32(0)
	for _, n := range g.counts(cur - 1) {
		if n < fewest.n {
			continue
		}
		span := min(low(n).Seconds(), maxHorizon.Seconds())
		if !g.lowSince {
			span = g.horizon
		}
		anticipated := g.f.recurring != nil
		if anticipated {
			span = min(span, max(0, g.f.pulseFrom-g.delay-g.pause))
		}
		// Two changes: this one and the one that adds the replicas back,
		// whose pods are paid while they start.
		price := 2*g.changePrice(cur, n) + float64(cur-n)*g.delay
		if n > fewest.n {
			// A step part of the way leaves another to take.
			price += g.changePrice(n, fewest.n)
		}
		v := float64(cur-n)*span - price
		if v <= gain {
			continue
		}
		if miss := g.returnMiss(cur, n); g.missBudget && !anticipated && miss > missBudget*span {
			// The load that comes back unannounced would miss the
			// target for longer than the time saved allows.
			held, heldAt = miss, n
			continue
		}
		best, gain = candidate{n: n, peak: fewest.peak}, v
	}
	if best.n != cur {
		best = tryDown(best.n)
	}
	if held > 0 && best.n > heldAt {
		best.held = held
	}
	return best, fewest.n, false
}

// waitPays reports whether a scale-up to n made at the next poll keeps the
// time lag under the target: the plan that waits is one poll's worth of
// replicas cheaper, and the decision at that poll sees whether the load
// has eased. The trend is followed one poll further, as that decision
// would see it.
func (g *groupModel) waitPays(s start, n int32) bool {
	if !g.wait {
		return false
	}
	poll := g.f.poll.Seconds()
	h := *g
	h.react += poll
	return h.simulate(s.members, int(n), g.delay+poll, true).over == 0
}

// returnMiss is how long the time lag would be over the target if the
// load that cur replicas carry came back unannounced to n: the oldest
// record ages at 1 - n/cur seconds a second until added replicas consume,
// a reaction time later.
func (g *groupModel) returnMiss(cur, n int32) float64 {
	grows := 1 - float64(n)/float64(cur)
	if grows <= 0 {
		return 0
	}
	return max(0, g.react-g.allow/grows)
}

// smallest is the smallest of the increasing counts whose prediction is
// good, found by bisection (more replicas never predict a higher time lag
// or backlog); n is 0 when none is.
func (g *groupModel) smallest(counts []int32, try func(int32) candidate, good func(candidate) bool) candidate {
	lo, hi := 0, len(counts)
	var found candidate
	for lo < hi {
		mid := (lo + hi) / 2
		c := try(counts[mid])
		if good(c) {
			found, hi = c, mid
		} else {
			lo = mid + 1
		}
	}
	return found
}

// most is the most replicas a plan considers: the partition count in a
// consumer group, and in a share group enough to consume the backlog and
// the highest inflow of the window within it.
func (g *groupModel) most(cur int32) int32 {
	if !g.share {
		return min(int32(max(g.partitions(), 1)), g.hi)
	}
	peak := 0.0
	for t := 0.0; t < g.horizon; t += g.dt {
		peak = max(peak, g.f.at(g.forecastTime(t)))
	}
	need := (peak + sum(g.lags)/math.Max(g.allow, 1)) / g.capacity
	return min(max(cur, replicaCount(math.Ceil(2*need)), 1), g.hi)
}

// forecastTime is the time at which the forecast's trend is read for t:
// no later than react.
func (g *groupModel) forecastTime(t float64) float64 {
	if g.f.recurring != nil && t >= g.f.pulseFrom {
		return t
	}
	return min(t, g.react)
}

// withoutRecurrence is g with the forecast's recurring burst left out.
func (g *groupModel) withoutRecurrence() *groupModel {
	h := *g
	h.f.recurring = nil
	return &h
}

// describe is the plan's part of a reason.
func (g *groupModel) describe(m Model, prior float64, c candidate) string {
	known := "measured"
	switch {
	case m.Saturated:
	case prior > 0 && m.Capacity <= prior:
		known = "throughputPerReplica"
	default:
		known = "at least, as consumed so far"
	}
	s := fmt.Sprintf("capacity %s/s per replica (%s), scale-up delay %s, rebalance %s", num(m.Capacity), known, secs(g.delay), secs(g.pause))
	if c.waits > 0 {
		return fmt.Sprintf("%s; %s keep the time lag under %s over the next %s if added at the next poll, waiting for it", s, replicas(c.waits), secs(g.allow), secs(g.horizon))
	}
	if c.over > 0 {
		return fmt.Sprintf("%s; no count keeps the time lag under %s over the next %s, the cheapest that miss least", s, secs(g.allow), secs(g.horizon))
	}
	s = fmt.Sprintf("%s; time lag at most %s over the next %s", s, secs(c.peak), secs(g.horizon))
	if c.held > 0 {
		s = fmt.Sprintf("%s; fewer would miss the target for %s if the load came back before added pods consume", s, secs(c.held))
	}
	return s
}

// scaleUpDelay is how long added replicas take to consume: the measured
// delay, or the minimum interval until one is measured (it is meant to
// cover pod start-up and the rebalance).
func scaleUpDelay(spec Spec, m Model) time.Duration {
	if m.ScaleUpDelay > 0 {
		return m.ScaleUpDelay
	}
	if spec.MinScaleInterval > 0 {
		return spec.MinScaleInterval
	}
	return DefaultMinScaleInterval
}

// rebalancePause is the measured rebalance pause, or half a poll interval
// until one is seen: a pause never seen at a poll is shorter than one.
func rebalancePause(m Model, poll time.Duration) time.Duration {
	if m.RebalancePause > 0 {
		return m.RebalancePause
	}
	return poll / 2
}
