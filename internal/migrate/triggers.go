package migrate

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// param is a trigger parameter: a literal value, or a reference to a key of
// a Secret or ConfigMap, or to a container's environment variable.
type param struct {
	value     string
	secret    *AuthTargetRef
	configMap *AuthTargetRef
	env       string
	// from says where it was found, for the report.
	from string
}

// triggerParams are the parameters of one Kafka trigger, from its metadata
// and its TriggerAuthentication, with what the mappers need to resolve
// them: the workload whose environment *FromEnv parameters name, and the
// report. It remembers which parameters a mapper asked for, so that the
// rest can be reported as dropped.
type triggerParams struct {
	params map[string]param
	used   map[string]bool
	// deploy and container are where environment variables are read from;
	// deploy is nil when the workload is not a Deployment in the input.
	deploy    *appsv1.Deployment
	container string
	rep       *Report
}

// newTriggerParams takes the trigger's metadata; resolveAuth adds the
// authentication's parameters to params afterwards.
func newTriggerParams(trig *Trigger, trigField string, deploy *appsv1.Deployment, container string, rep *Report) *triggerParams {
	tp := &triggerParams{params: map[string]param{}, used: map[string]bool{}, deploy: deploy, container: container, rep: rep}
	for k, v := range trig.Metadata {
		tp.params[k] = param{value: string(v), from: trigField + ".metadata." + k}
	}
	return tp
}

// get returns a parameter as it was given, and marks it used.
func (tp *triggerParams) get(name string) (param, bool) {
	tp.used[name] = true
	p, ok := tp.params[name]
	return p, ok
}

// markUsed marks parameters as seen when an essential line already says
// why their section could not be mapped.
func (tp *triggerParams) markUsed(names ...string) {
	for _, n := range names {
		tp.get(n)
	}
}

// literal returns a parameter's value and where it came from. A value kept
// in a Secret or ConfigMap is not read; one from the workload's environment
// is read from its manifest, and is essential when it has no literal value
// there.
func (tp *triggerParams) literal(name string) (v, from string, ok bool) {
	p, ok := tp.get(name)
	if !ok {
		return "", "", false
	}
	if p.value == "" && p.env == "" && (p.secret != nil || p.configMap != nil) {
		return "", p.from, false
	}
	if p.env != "" {
		v, ok := envValue(tp.deploy, tp.container, p.env)
		if !ok {
			tp.rep.essential(p.from, "comes from the environment variable %s of the workload, which has no literal value there", p.env)
			return "", p.from, false
		}
		return v, p.from, true
	}
	return p.value, p.from, true
}

// fromEnv is literal for the parameters KEDA also takes as NAMEFromEnv,
// the name of an environment variable of the workload: its value at
// migration time is written into the EventConsumer.
func (tp *triggerParams) fromEnv(name string) (v, from string, ok bool) {
	if v, from, ok := tp.literal(name); ok {
		return v, from, true
	}
	p, ok := tp.get(name + "FromEnv")
	if !ok {
		return "", "", false
	}
	if tp.deploy == nil {
		tp.rep.essential(p.from, "%s comes from the workload's environment variable %s: add the Deployment's manifest with -f, or use --from-cluster", name, p.value)
		return "", p.from, false
	}
	v, ok = envValue(tp.deploy, tp.container, p.value)
	if !ok {
		tp.rep.essential(p.from, "the workload's container has no literal environment variable %s to read %s from", p.value, name)
		return "", p.from, false
	}
	tp.rep.add(p.from, Approximated, "%s read from the workload's %s at migration time (%q): the EventConsumer states it, so a later change of the variable no longer moves it", name, p.value, v)
	return v, p.from, true
}

// boolean is literal for a true-or-false parameter; anything else is
// essential.
func (tp *triggerParams) boolean(name string) (b bool, from string, ok bool) {
	v, from, ok := tp.literal(name)
	if !ok {
		return false, from, false
	}
	b, err := parseBool(v)
	if err != nil {
		tp.rep.essential(from, "%q is not true or false", v)
		return false, from, false
	}
	return b, from, true
}

// mode reads sasl or tls, which KEDA allows in a Secret or ConfigMap too;
// migrate does not read their values, so those need the flag, whose value
// is override. known is false when the value is needed and missing.
func (tp *triggerParams) mode(name, flag, override string) (v, from string, known bool) {
	p, ok := tp.get(name)
	if !ok {
		return "", "", true
	}
	if p.secret != nil || p.configMap != nil {
		src := "Secret"
		ref := p.secret
		if ref == nil {
			src, ref = "ConfigMap", p.configMap
		}
		if override == "" {
			tp.rep.essential(p.from, "%s comes from %s %s key %s, whose value migrate does not read: pass %s with its value", name, src, ref.Name, ref.Key, flag)
			return "", p.from, false
		}
		tp.rep.add(p.from, Mapped, "%s %q from %s (%s %s key %s is not read)", name, override, flag, src, ref.Name, ref.Key)
		return override, p.from, true
	}
	v, from, _ = tp.literal(name)
	return v, from, true
}

// reportUnused says that every parameter no mapper asked for is dropped.
func (tp *triggerParams) reportUnused() {
	for _, k := range sortedKeys(tp.params) {
		if tp.used[k] {
			continue
		}
		tp.rep.add(tp.params[k].from, Unsupported, "parameter %q has no lagscale counterpart and is dropped", k)
	}
}

// mapTrigger maps the scaling parameters of the trigger.
func mapTrigger(trig *Trigger, f string, ec *v1alpha1.EventConsumer, tp *triggerParams) {
	mapThresholds(f, &ec.Spec.Scaling, tp)
	mapPartitionOptions(&ec.Spec.Scaling, tp)
	mapClientOptions(trig, f, tp)
}

// mapThresholds maps the lag thresholds and the offset reset policy.
func mapThresholds(f string, s *v1alpha1.ScalingSpec, tp *triggerParams) {
	rep := tp.rep
	if v, from, ok := tp.literal("lagThreshold"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			rep.essential(from, "%q is not a positive integer", v)
		} else {
			s.LagThreshold = ptr.To(n)
			rep.add(from, Mapped, "spec.scaling.lagThreshold %d with policy LagThreshold: ceil(total lag / %d), capped at the partition count, as KEDA computes it", n, n)
		}
	} else {
		s.LagThreshold = ptr.To[int64](kedaLagThreshold)
		rep.add(f+".metadata.lagThreshold", Mapped, "absent: KEDA's default %d, written out as spec.scaling.lagThreshold with policy LagThreshold", kedaLagThreshold)
	}
	if v, from, ok := tp.literal("activationLagThreshold"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			rep.essential(from, "%q is not a non-negative integer", v)
		} else {
			s.ActivationLag = ptr.To(n)
			rep.add(from, Mapped, "spec.scaling.activationLag %d", n)
		}
	}
	if v, from, ok := tp.literal("offsetResetPolicy"); ok {
		switch v {
		case "latest", "earliest":
			s.OffsetResetPolicy = v1alpha1.OffsetResetPolicy(v)
			rep.add(from, Mapped, "spec.scaling.offsetResetPolicy %s (also the handler's KAFKA_AUTO_OFFSET_RESET)", v)
		default:
			rep.essential(from, "%q is neither latest nor earliest", v)
		}
	} else {
		s.OffsetResetPolicy = v1alpha1.OffsetResetLatest
	}
}

// mapPartitionOptions maps the options that choose which partitions and
// which lag count.
func mapPartitionOptions(s *v1alpha1.ScalingSpec, tp *triggerParams) {
	rep := tp.rep
	if b, from, ok := tp.boolean("allowIdleConsumers"); ok {
		s.AllowIdleConsumers = b
		rep.add(from, Mapped, "spec.scaling.allowIdleConsumers %t", b)
	}
	tp.flag("excludePersistentLag",
		verdict{Unsupported, "lagscale counts all lag; its nearest match is the lag engine's stuck-partition health (STALL in status.lag.partitions), which shows a partition whose committed offset does not move but still counts its lag"},
		verdict{Mapped, "false: lagscale counts persistent lag too"})
	if _, from, ok := tp.literal("partitionLimitation"); ok {
		rep.add(from, Unsupported, "lagscale measures every partition of the topics; the limitation is dropped")
	}
	tp.flag("scaleToZeroOnInvalidOffset",
		verdict{Approximated, "lagscale gives a partition without a committed offset the lag its offsetResetPolicy implies (none for latest, the whole log for earliest) instead of scaling to zero or one"},
		verdict{Approximated, "false: KEDA counts such a partition as lag 1; lagscale counts the lag its offsetResetPolicy implies"})
	tp.flag("limitToPartitionsWithLag",
		verdict{Unsupported, "lagscale caps replicas at the partition count, not at the partitions with lag"},
		verdict{Mapped, "false: replicas are capped at the partition count"})
	tp.flag("ensureEvenDistributionOfPartitions",
		verdict{Approximated, "lagscale's partition-aware steps already prefer replica counts that split the partitions evenly"},
		verdict{Mapped, "false"})
}

// verdict is a report line's outcome and detail.
type verdict struct {
	outcome Outcome
	detail  string
}

// flag reports a boolean trigger option that maps to no field: what
// lagscale does instead when it is true, and when it is false.
func (tp *triggerParams) flag(key string, onTrue, onFalse verdict) {
	b, from, ok := tp.boolean(key)
	if !ok {
		return
	}
	v := onFalse
	if b {
		v = onTrue
	}
	tp.rep.add(from, v.outcome, "%s", v.detail)
}

// mapClientOptions maps the options of KEDA's own Kafka client, which
// lagscale's lag engine does not need.
func mapClientOptions(trig *Trigger, f string, tp *triggerParams) {
	rep := tp.rep
	if _, from, ok := tp.literal("version"); ok {
		rep.add(from, Mapped, "not needed: franz-go negotiates the protocol version with each broker")
	}
	for _, k := range []string{"fullMetadata", "commitOffsets"} {
		if _, from, ok := tp.literal(k); ok {
			rep.add(from, Mapped, "not needed: lagscale reads offsets through the admin API")
		}
	}
	switch trig.MetricType {
	case "", "AverageValue":
	default:
		rep.add(f+".metricType", Approximated, "%s: lagscale divides the lag by lagThreshold per replica, as AverageValue does", trig.MetricType)
	}
	if trig.UseCachedMetrics {
		rep.add(f+".useCachedMetrics", Mapped, "not needed: lagscale polls each group once per interval and every reader shares it")
	}
}
