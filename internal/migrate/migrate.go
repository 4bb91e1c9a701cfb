package migrate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lagscale/lagscale/api/v1alpha1"
)

// Outcome says what became of one KEDA field.
type Outcome string

const (
	// Mapped means lagscale does the same thing.
	Mapped Outcome = "mapped"
	// Approximated means lagscale does something close; the line says how it
	// differs.
	Approximated Outcome = "approximated"
	// Unsupported means lagscale has nothing for it; the field is dropped.
	Unsupported Outcome = "unsupported"
)

// Line is one field's outcome.
type Line struct {
	// Field is the KEDA field, as a path in the ScaledObject (or in the
	// TriggerAuthentication for auth parameters).
	Field   string
	Outcome Outcome
	// Detail says where it went, or why not.
	Detail string
	// Essential is set on an unsupported field without which the consumer
	// would behave differently enough that migrate writes no EventConsumer
	// for it.
	Essential bool
}

// Report is the outcome of one ScaledObject.
type Report struct {
	// ScaledObject is namespace/name of the source.
	ScaledObject string
	Lines        []Line
}

// Failed reports whether an essential field could not be mapped.
func (r *Report) Failed() bool {
	for _, l := range r.Lines {
		if l.Essential {
			return true
		}
	}
	return false
}

func (r *Report) add(field string, o Outcome, format string, args ...any) {
	r.Lines = append(r.Lines, Line{Field: field, Outcome: o, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) essential(field, format string, args ...any) {
	r.Lines = append(r.Lines, Line{Field: field, Outcome: Unsupported, Detail: fmt.Sprintf(format, args...), Essential: true})
}

// Options change how values KEDA keeps in Secrets are treated.
type Options struct {
	// SASL is the KEDA sasl value (none, plaintext, scram_sha256,
	// scram_sha512) to use when the trigger takes it from a Secret or
	// ConfigMap, whose values migrate never reads.
	SASL string
	// TLS is the KEDA tls value (enable, disable) for the same case.
	TLS string
	// Own moves the scaled Deployment's pod template into spec.template,
	// so that lagscale creates and owns a new Deployment in its place. By
	// default the EventConsumer scales the workload as it is, through
	// spec.scaleTargetRef, and nothing in it changes.
	Own bool
}

// Result is the converted objects and the report of every ScaledObject.
type Result struct {
	Clusters  []*v1alpha1.KafkaCluster
	Consumers []*v1alpha1.EventConsumer
	Reports   []*Report
}

// Failed reports whether any ScaledObject had an essential field that
// could not be mapped; its EventConsumer is then left out of the result.
func (r *Result) Failed() bool {
	for _, rep := range r.Reports {
		if rep.Failed() {
			return true
		}
	}
	return false
}

// KEDA's defaults, applied when a field is absent so that the EventConsumer
// states the value KEDA was using rather than lagscale's own default.
const (
	kedaPollingInterval = 30
	kedaCooldownPeriod  = 300
	kedaMinReplicas     = 0
	kedaMaxReplicas     = 100
	kedaLagThreshold    = 10
	// hpaScaleDownWindow is the HPA's default scale-down stabilization,
	// which KEDA's HPA uses between 1 and N replicas.
	hpaScaleDownWindow = 300
)

// Bounds of EventConsumer fields that KEDA does not have.
const (
	maxPollInterval  = 300
	maxStabilization = 3600
)

// kafkaTrigger reports whether a trigger type is one of KEDA's Kafka
// scalers: kafka (sarama) or apache-kafka (the experimental kafka-go one).
func kafkaTrigger(t string) bool { return t == "kafka" || t == "apache-kafka" }

// Convert maps every ScaledObject of the input. An input without any
// ScaledObject is an error; a ScaledObject that cannot be mapped has a
// failed Report and no EventConsumer.
func Convert(in *Input, o Options) (*Result, error) {
	if len(in.ScaledObjects) == 0 {
		return nil, fmt.Errorf("no KEDA ScaledObject (apiVersion keda.sh/v1alpha1) in the input")
	}
	if err := validChoice("--sasl", o.SASL, "none", "plaintext", "scram_sha256", "scram_sha512"); err != nil {
		return nil, err
	}
	if err := validChoice("--tls", o.TLS, "enable", "disable"); err != nil {
		return nil, err
	}
	res := &Result{}
	sos := append([]*ScaledObject(nil), in.ScaledObjects...)
	sort.SliceStable(sos, func(i, j int) bool { return sos[i].Namespace+"/"+sos[i].Name < sos[j].Namespace+"/"+sos[j].Name })
	for _, so := range sos {
		ec, rep := convertOne(so, in, o)
		res.Reports = append(res.Reports, rep)
		if ec != nil && !rep.Failed() {
			res.Consumers = append(res.Consumers, ec)
		}
	}
	res.Clusters = shareClusters(res.Consumers, res.Reports)
	return res, nil
}

func validChoice(flag, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q: want one of %s", flag, v, strings.Join(allowed, ", "))
}

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

func convertOne(so *ScaledObject, in *Input, o Options) (*v1alpha1.EventConsumer, *Report) {
	rep := &Report{ScaledObject: so.Namespace + "/" + so.Name}
	if so.Namespace == "" {
		rep.ScaledObject = so.Name
	}
	spec := so.Spec

	// The trigger.
	var trig *Trigger
	var trigField string
	for i := range spec.Triggers {
		t := &spec.Triggers[i]
		f := fmt.Sprintf("spec.triggers[%d]", i)
		if !kafkaTrigger(t.Type) {
			rep.add(f, Unsupported, "trigger type %q is dropped: lagscale scales on consumer-group lag only, so this workload no longer scales on it", t.Type)
			continue
		}
		if trig != nil {
			rep.essential(f, "a second Kafka trigger: an EventConsumer consumes one consumer group; split the workload into one Deployment per group")
			continue
		}
		trig, trigField = t, f
	}
	if trig == nil {
		rep.essential("spec.triggers", "no kafka or apache-kafka trigger: nothing for lagscale to scale on")
		return nil, rep
	}

	deploy, container := scaleTarget(so, in, o.Own, rep)

	params := map[string]param{}
	for k, v := range trig.Metadata {
		params[k] = param{value: string(v), from: trigField + ".metadata." + k}
	}
	resolveAuth(so, trig, trigField, in, params, rep)

	ec := &v1alpha1.EventConsumer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "EventConsumer"},
		ObjectMeta: metav1.ObjectMeta{Name: so.Name, Namespace: so.Namespace},
	}
	ec.Spec.Scaling.Policy = v1alpha1.PolicyLagThreshold
	used := map[string]bool{}
	get := func(name string) (param, bool) {
		used[name] = true
		p, ok := params[name]
		return p, ok
	}
	literal := func(name string) (string, string, bool) {
		p, ok := get(name)
		if !ok {
			return "", "", false
		}
		if p.value == "" && p.env == "" && (p.secret != nil || p.configMap != nil) {
			return "", p.from, false
		}
		if p.env != "" {
			v, ok := envValue(deploy, container, p.env)
			if !ok {
				rep.essential(p.from, "comes from the environment variable %s of the workload, which has no literal value there", p.env)
				return "", p.from, false
			}
			return v, p.from, true
		}
		return p.value, p.from, true
	}
	fromEnv := func(name string) (string, string, bool) {
		if v, from, ok := literal(name); ok {
			return v, from, true
		}
		p, ok := get(name + "FromEnv")
		if !ok {
			return "", "", false
		}
		if deploy == nil {
			rep.essential(p.from, "%s comes from the workload's environment variable %s: add the Deployment's manifest with -f, or use --from-cluster", name, p.value)
			return "", p.from, false
		}
		v, ok := envValue(deploy, container, p.value)
		if !ok {
			rep.essential(p.from, "the workload's container has no literal environment variable %s to read %s from", p.value, name)
			return "", p.from, false
		}
		rep.add(p.from, Approximated, "%s read from the workload's %s at migration time (%q): the EventConsumer states it, so a later change of the variable no longer moves it", name, p.value, v)
		return v, p.from, true
	}

	// Connection.
	if v, from, ok := fromEnv("bootstrapServers"); ok {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				ec.Spec.Kafka.BootstrapServers = append(ec.Spec.Kafka.BootstrapServers, s)
			}
		}
		if !strings.HasSuffix(from, "FromEnv") {
			rep.add(from, Mapped, "spec.kafka.bootstrapServers %v", ec.Spec.Kafka.BootstrapServers)
		}
	}
	if len(ec.Spec.Kafka.BootstrapServers) == 0 {
		rep.essential(trigField+".metadata.bootstrapServers", "missing: lagscale needs the brokers")
	}
	if v, from, ok := fromEnv("consumerGroup"); ok && v != "" {
		ec.Spec.ConsumerGroup = v
		if !strings.HasSuffix(from, "FromEnv") {
			rep.add(from, Mapped, "spec.consumerGroup %q", v)
		}
	} else {
		rep.essential(trigField+".metadata.consumerGroup", "missing: lagscale needs the consumer group")
	}
	if v, from, ok := fromEnv("topic"); ok && v != "" {
		topics := []string{v}
		if trig.Type == "apache-kafka" || strings.Contains(v, ",") {
			topics = nil
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					topics = append(topics, t)
				}
			}
		}
		ec.Spec.Topics = topics
		if !strings.HasSuffix(from, "FromEnv") {
			rep.add(from, Mapped, "spec.topics %v", topics)
		}
	} else {
		rep.essential(trigField+".metadata.topic", "missing: KEDA then measures every topic the group has committed to, while an EventConsumer names its topics; add topic to the trigger")
	}

	mapTrigger(trig, trigField, ec, literal, rep)
	mapSecurity(trigField, ec, get, literal, o, rep)

	for _, k := range sortedKeys(params) {
		if used[k] {
			continue
		}
		p := params[k]
		rep.add(p.from, Unsupported, "parameter %q has no lagscale counterpart and is dropped", k)
	}

	mapScaledObject(so, ec, o.Own, rep)
	switch {
	case !o.Own:
		keepWorkload(so, deploy, ec, rep)
	case deploy != nil:
		mapDeployment(so, deploy, container, ec, rep)
	}
	return ec, rep
}

// keepWorkload points the EventConsumer at the workload the ScaledObject
// scales: lagscale then sets its replicas and nothing else, so the team
// keeps deploying it as before.
func keepWorkload(so *ScaledObject, d *appsv1.Deployment, ec *v1alpha1.EventConsumer, rep *Report) {
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name == "" {
		return // reported by scaleTarget
	}
	apiVersion, kind := ref.APIVersion, ref.Kind
	if apiVersion == "" {
		apiVersion = "apps/v1" // KEDA's default, written out
	}
	if kind == "" {
		kind = "Deployment"
	}
	ec.Spec.ScaleTargetRef = &v1alpha1.ScaleTargetRef{APIVersion: apiVersion, Kind: kind, Name: ref.Name}
	rep.add("spec.scaleTargetRef", Mapped, "spec.scaleTargetRef %s %s %s: lagscale sets its replicas through the scale subresource and changes nothing else in it. Apply this EventConsumer, then delete the ScaledObject: until the ScaledObject and its HPA are gone the EventConsumer is Ready=False ScaleTargetConflict and writes nothing, then it takes over by itself", apiVersion, kind, ref.Name)
	if ref.EnvSourceContainerName != "" {
		rep.add("spec.scaleTargetRef.envSourceContainerName", Mapped, "used only to read *FromEnv parameters from container %s; lagscale injects nothing into the workload", ref.EnvSourceContainerName)
	}
	if d != nil && d.Spec.Replicas != nil {
		rep.add(fmt.Sprintf("Deployment %s spec.replicas", d.Name), Approximated, "lagscale sets replicas from now on: remove replicas from the manifest your deployment tool applies (Helm chart, Argo CD, Flux), as for an HPA, or it and lagscale take turns")
	}
}

// mapTrigger maps the scaling parameters of the trigger.
func mapTrigger(trig *Trigger, f string, ec *v1alpha1.EventConsumer, literal func(string) (string, string, bool), rep *Report) {
	s := &ec.Spec.Scaling
	if v, from, ok := literal("lagThreshold"); ok {
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
	if v, from, ok := literal("activationLagThreshold"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			rep.essential(from, "%q is not a non-negative integer", v)
		} else {
			s.ActivationLag = ptr.To(n)
			rep.add(from, Mapped, "spec.scaling.activationLag %d", n)
		}
	}
	if v, from, ok := literal("offsetResetPolicy"); ok {
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
	boolParam := func(name string) (bool, string, bool) {
		v, from, ok := literal(name)
		if !ok {
			return false, from, false
		}
		b, err := parseBool(v)
		if err != nil {
			rep.essential(from, "%q is not true or false", v)
			return false, from, false
		}
		return b, from, true
	}
	if b, from, ok := boolParam("allowIdleConsumers"); ok {
		s.AllowIdleConsumers = b
		rep.add(from, Mapped, "spec.scaling.allowIdleConsumers %t", b)
	}
	if b, from, ok := boolParam("excludePersistentLag"); ok {
		if b {
			rep.add(from, Unsupported, "lagscale counts all lag; its nearest match is the lag engine's stuck-partition health (STALL in status.lag.partitions), which shows a partition whose committed offset does not move but still counts its lag")
		} else {
			rep.add(from, Mapped, "false: lagscale counts persistent lag too")
		}
	}
	if _, from, ok := literal("partitionLimitation"); ok {
		rep.add(from, Unsupported, "lagscale measures every partition of the topics; the limitation is dropped")
	}
	if b, from, ok := boolParam("scaleToZeroOnInvalidOffset"); ok {
		if b {
			rep.add(from, Approximated, "lagscale gives a partition without a committed offset the lag its offsetResetPolicy implies (none for latest, the whole log for earliest) instead of scaling to zero or one")
		} else {
			rep.add(from, Approximated, "false: KEDA counts such a partition as lag 1; lagscale counts the lag its offsetResetPolicy implies")
		}
	}
	if b, from, ok := boolParam("limitToPartitionsWithLag"); ok {
		if b {
			rep.add(from, Unsupported, "lagscale caps replicas at the partition count, not at the partitions with lag")
		} else {
			rep.add(from, Mapped, "false: replicas are capped at the partition count")
		}
	}
	if b, from, ok := boolParam("ensureEvenDistributionOfPartitions"); ok {
		if b {
			rep.add(from, Approximated, "lagscale's partition-aware steps already prefer replica counts that split the partitions evenly")
		} else {
			rep.add(from, Mapped, "false")
		}
	}
	if _, from, ok := literal("version"); ok {
		rep.add(from, Mapped, "not needed: franz-go negotiates the protocol version with each broker")
	}
	for _, k := range []string{"fullMetadata", "commitOffsets"} {
		if _, from, ok := literal(k); ok {
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

// mapSecurity maps SASL and TLS from the trigger and its authentication,
// taking Secrets by reference only.
func mapSecurity(f string, ec *v1alpha1.EventConsumer, get func(string) (param, bool), literal func(string) (string, string, bool), o Options, rep *Report) {
	// mode reads sasl or tls, which KEDA allows in a Secret too; migrate
	// does not read Secret values, so those need the flag.
	mode := func(name, flag, override string) (string, string, bool) {
		p, ok := get(name)
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
				rep.essential(p.from, "%s comes from %s %s key %s, whose value migrate does not read: pass %s with its value", name, src, ref.Name, ref.Key, flag)
				return "", p.from, false
			}
			rep.add(p.from, Mapped, "%s %q from %s (%s %s key %s is not read)", name, override, flag, src, ref.Name, ref.Key)
			return override, p.from, true
		}
		v, from, _ := literal(name)
		return v, from, true
	}
	// quiet marks parameters as seen when an essential line already says
	// why their section could not be mapped.
	quiet := func(names ...string) {
		for _, n := range names {
			get(n)
		}
	}

	sasl, saslFrom, saslKnown := mode("sasl", "--sasl", o.SASL)
	if p, ok := get("saslTokenProvider"); ok {
		v, _, _ := literal("saslTokenProvider")
		switch v {
		case "aws_msk_iam":
			rep.essential(p.from, "MSK IAM authentication is not supported by lagscale")
		case "bearer", "":
		default:
			rep.essential(p.from, "token provider %q is not supported", v)
		}
	}
	for _, k := range []string{"awsRegion", "awsEndpoint", "awsRoleArn", "awsAccessKeyID", "awsSecretAccessKey"} {
		if p, ok := get(k); ok {
			rep.add(p.from, Unsupported, "AWS authentication is not supported by lagscale")
		}
	}
	var mech v1alpha1.SASLMechanism
	switch strings.ToLower(sasl) {
	case "", "none":
		if !saslKnown {
			quiet("username", "password")
			break
		}
		if saslFrom != "" {
			rep.add(saslFrom, Mapped, "no SASL")
		}
	case "plaintext":
		mech = v1alpha1.SASLPlain
	case "scram_sha256":
		mech = v1alpha1.SASLScramSHA256
	case "scram_sha512":
		mech = v1alpha1.SASLScramSHA512
	case "oauthbearer":
		rep.essential(saslFrom, "OAuth (SASL/OAUTHBEARER) is not supported by lagscale")
	case "gssapi":
		rep.essential(saslFrom, "GSSAPI (Kerberos) is not supported by lagscale")
	case "aws_msk_iam":
		rep.essential(saslFrom, "MSK IAM authentication is not supported by lagscale")
	default:
		rep.essential(saslFrom, "unknown sasl %q", sasl)
	}
	for _, k := range []string{"scopes", "oauthTokenEndpointUri", "oauthExtensions", "keytab", "realm", "kerberosConfig", "kerberosServiceName", "kerberosDisableFAST"} {
		if p, ok := get(k); ok {
			rep.add(p.from, Unsupported, "belongs to OAuth or GSSAPI, which lagscale does not support")
		}
	}
	if mech != "" {
		user, uok := get("username")
		pass, pok := get("password")
		switch {
		case !uok || !pok:
			rep.essential(saslFrom, "SASL %s needs username and password from the TriggerAuthentication", mech)
		case user.secret == nil || pass.secret == nil:
			rep.essential(user.from, "username and password must come from a Secret (secretTargetRef): lagscale takes credentials by reference only")
		case user.secret.Name != pass.secret.Name || user.secret.Key != "username" || pass.secret.Key != "password":
			rep.essential(user.from, "lagscale reads the keys username and password of one Secret, but username is %s/%s and password is %s/%s: make a Secret with keys username and password and point secretTargetRef at it",
				user.secret.Name, user.secret.Key, pass.secret.Name, pass.secret.Key)
		default:
			ec.Spec.Kafka.SASL = &v1alpha1.SASLConfig{Mechanism: mech, SecretRef: v1alpha1.LocalObjectRef{Name: user.secret.Name}}
			rep.add(saslFrom, Mapped, "spec.kafka.sasl.mechanism %s", mech)
			rep.add(user.from, Mapped, "spec.kafka.sasl.secretRef %s (keys username and password, by reference)", user.secret.Name)
			rep.add(pass.from, Mapped, "spec.kafka.sasl.secretRef %s", pass.secret.Name)
		}
	} else if saslKnown {
		for _, k := range []string{"username", "password"} {
			if p, ok := get(k); ok {
				rep.add(p.from, Unsupported, "%s without SASL is not used", k)
			}
		}
	}

	tls, tlsFrom, tlsKnown := mode("tls", "--tls", o.TLS)
	if !tlsKnown {
		quiet("ca", "cert", "key", "keyPassword", "unsafeSsl")
		return
	}
	switch tls {
	case "", "disable":
		if tlsFrom != "" {
			rep.add(tlsFrom, Mapped, "no TLS")
		}
		for _, k := range []string{"ca", "cert", "key", "keyPassword", "unsafeSsl"} {
			if p, ok := get(k); ok {
				rep.add(p.from, Unsupported, "%s without tls enable is not used, as in KEDA", k)
			}
		}
		return
	case "enable":
	default:
		rep.essential(tlsFrom, "tls %q is neither enable nor disable", tls)
		return
	}
	t := &v1alpha1.TLSConfig{}
	rep.add(tlsFrom, Mapped, "spec.kafka.tls")
	ref := func(name string) *v1alpha1.SecretKeyRef {
		p, ok := get(name)
		if !ok {
			return nil
		}
		if p.secret == nil {
			rep.essential(p.from, "%s must come from a Secret (secretTargetRef): lagscale takes key material by reference only", name)
			return nil
		}
		rep.add(p.from, Mapped, "spec.kafka.tls.%sSecretRef %s key %s, mounted into the handler pods", map[string]string{"ca": "ca", "cert": "cert", "key": "key"}[name], p.secret.Name, p.secret.Key)
		return &v1alpha1.SecretKeyRef{Name: p.secret.Name, Key: p.secret.Key}
	}
	t.CASecretRef, t.CertSecretRef, t.KeySecretRef = ref("ca"), ref("cert"), ref("key")
	if (t.CertSecretRef == nil) != (t.KeySecretRef == nil) {
		rep.essential(f, "cert and key must be given together for client authentication")
	}
	if p, ok := get("keyPassword"); ok {
		rep.essential(p.from, "an encrypted client key (keyPassword) is not supported: give lagscale an unencrypted key in a Secret")
	}
	if v, from, ok := literal("unsafeSsl"); ok {
		b, err := parseBool(v)
		if err != nil {
			rep.essential(from, "%q is not true or false", v)
		} else {
			t.InsecureSkipVerify = b
			rep.add(from, Mapped, "spec.kafka.tls.insecureSkipVerify %t", b)
		}
	}
	ec.Spec.Kafka.TLS = t
}

// resolveAuth adds the parameters of the trigger's TriggerAuthentication
// (or ClusterTriggerAuthentication). KEDA's metadata wins for parameters
// allowed in both places, as in KEDA.
func resolveAuth(so *ScaledObject, trig *Trigger, f string, in *Input, params map[string]param, rep *Report) {
	if trig.AuthenticationRef == nil {
		return
	}
	kind := trig.AuthenticationRef.Kind
	if kind == "" {
		kind = "TriggerAuthentication"
	}
	field := f + ".authenticationRef"
	if kind != "TriggerAuthentication" && kind != "ClusterTriggerAuthentication" {
		rep.essential(field, "unknown kind %q: want TriggerAuthentication or ClusterTriggerAuthentication", kind)
		return
	}
	ta, ok := in.Auths[authKey(kind, so.Namespace, trig.AuthenticationRef.Name)]
	if !ok {
		where := so.Namespace + "/" + trig.AuthenticationRef.Name
		if kind == "ClusterTriggerAuthentication" {
			where = trig.AuthenticationRef.Name
		}
		rep.essential(field, "%s %s is not in the input: add its manifest with -f, or use --from-cluster", kind, where)
		return
	}
	af := kind + " " + ta.Name
	for _, k := range sortedKeys(ta.raw) {
		switch k {
		case "secretTargetRef", "configMapTargetRef", "env":
		case "podIdentity":
			if ta.Spec.PodIdentity != nil && ta.Spec.PodIdentity.Provider != "" && ta.Spec.PodIdentity.Provider != "none" {
				rep.essential(af+" spec.podIdentity", "pod identity %q (MSK IAM and cloud identities) is not supported by lagscale", ta.Spec.PodIdentity.Provider)
			}
		default:
			rep.essential(af+" spec."+k, "lagscale reads credentials from Kubernetes Secrets only, not from %s", k)
		}
	}
	add := func(p string, v param) {
		if _, inMetadata := params[p]; inMetadata {
			return
		}
		params[p] = v
	}
	for i, r := range ta.Spec.SecretTargetRef {
		r := r
		add(r.Parameter, param{secret: &r, from: fmt.Sprintf("%s spec.secretTargetRef[%d] (%s)", af, i, r.Parameter)})
	}
	for i, r := range ta.Spec.ConfigMapTargetRef {
		r := r
		add(r.Parameter, param{configMap: &r, from: fmt.Sprintf("%s spec.configMapTargetRef[%d] (%s)", af, i, r.Parameter)})
	}
	for i, e := range ta.Spec.Env {
		add(e.Parameter, param{env: e.Name, from: fmt.Sprintf("%s spec.env[%d] (%s)", af, i, e.Parameter)})
	}
}

// scaleTarget finds the Deployment the ScaledObject scales and the
// container KEDA reads environment from.
//
// Unless own, any kind can be scaled and the Deployment is needed only to
// resolve *FromEnv parameters, so its absence is no error here.
func scaleTarget(so *ScaledObject, in *Input, own bool, rep *Report) (*appsv1.Deployment, string) {
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name == "" {
		rep.essential("spec.scaleTargetRef", "missing: name the workload the ScaledObject scales")
		return nil, ""
	}
	if !own {
		if (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
			return nil, ref.EnvSourceContainerName
		}
		d, ok := in.Deployments[so.Namespace+"/"+ref.Name]
		if !ok && so.Namespace != "" {
			d = in.Deployments["/"+ref.Name]
		}
		return d, ref.EnvSourceContainerName
	}
	if (ref.Kind != "" && ref.Kind != "Deployment") || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
		rep.essential("spec.scaleTargetRef", "%s %s: lagscale runs handlers as a Deployment it owns; only a Deployment can become an EventConsumer", ref.Kind, ref.Name)
		return nil, ""
	}
	d, ok := in.Deployments[so.Namespace+"/"+ref.Name]
	if !ok && so.Namespace != "" {
		d, ok = in.Deployments["/"+ref.Name]
	}
	if !ok {
		rep.essential("spec.scaleTargetRef", "Deployment %s is not in the input: add its manifest with -f, or use --from-cluster", ref.Name)
		return nil, ""
	}
	return d, ref.EnvSourceContainerName
}

// envValue returns a literal environment variable of the container KEDA
// reads from (the named one, else the first).
func envValue(d *appsv1.Deployment, container, name string) (string, bool) {
	if d == nil {
		return "", false
	}
	cs := d.Spec.Template.Spec.Containers
	for i := range cs {
		if (container == "" && i == 0) || cs[i].Name == container {
			for _, e := range cs[i].Env {
				if e.Name == name && e.ValueFrom == nil {
					return e.Value, true
				}
			}
		}
	}
	return "", false
}

// mapScaledObject maps the ScaledObject's own fields.
func mapScaledObject(so *ScaledObject, ec *v1alpha1.EventConsumer, own bool, rep *Report) {
	spec := so.Spec
	s := &ec.Spec.Scaling

	poll := int32(kedaPollingInterval)
	if spec.PollingInterval != nil {
		poll = *spec.PollingInterval
	}
	switch {
	case poll < 1:
		s.PollIntervalSeconds = ptr.To[int32](1)
		rep.add("spec.pollingInterval", Approximated, "%ds is below lagscale's 1s minimum: spec.scaling.pollIntervalSeconds 1", poll)
	case poll > maxPollInterval:
		s.PollIntervalSeconds = ptr.To[int32](maxPollInterval)
		rep.add("spec.pollingInterval", Approximated, "%ds is above lagscale's %ds maximum: spec.scaling.pollIntervalSeconds %d", poll, maxPollInterval, maxPollInterval)
	default:
		s.PollIntervalSeconds = ptr.To(poll)
		rep.add("spec.pollingInterval", Mapped, "spec.scaling.pollIntervalSeconds %d%s", poll, defaultNote(spec.PollingInterval == nil))
	}

	minR, maxR := int32(kedaMinReplicas), int32(kedaMaxReplicas)
	if spec.MinReplicaCount != nil {
		minR = *spec.MinReplicaCount
	}
	if spec.MaxReplicaCount != nil {
		maxR = *spec.MaxReplicaCount
	}
	s.MinReplicas, s.MaxReplicas = ptr.To(minR), ptr.To(maxR)
	rep.add("spec.minReplicaCount", Mapped, "spec.scaling.minReplicas %d%s", minR, defaultNote(spec.MinReplicaCount == nil))
	rep.add("spec.maxReplicaCount", Mapped, "spec.scaling.maxReplicas %d%s (still capped at the partition count unless allowIdleConsumers)", maxR, defaultNote(spec.MaxReplicaCount == nil))
	if minR > maxR {
		rep.essential("spec.minReplicaCount", "%d exceeds maxReplicaCount %d", minR, maxR)
	}

	// KEDA has two windows: the HPA's scale-down stabilization between N
	// and 1 replicas, and cooldownPeriod before the last replica goes when
	// minReplicaCount is 0. lagscale has one window for every scale-down.
	window := int32(hpaScaleDownWindow)
	windowFrom := "the HPA's default scale-down stabilization"
	var behavior *autoscalingv2.HorizontalPodAutoscalerBehavior
	if a := spec.Advanced; a != nil && a.HorizontalPodAutoscalerConfig != nil {
		behavior = a.HorizontalPodAutoscalerConfig.Behavior
	}
	if behavior != nil && behavior.ScaleDown != nil && behavior.ScaleDown.StabilizationWindowSeconds != nil {
		window = *behavior.ScaleDown.StabilizationWindowSeconds
		windowFrom = "behavior.scaleDown.stabilizationWindowSeconds"
	}
	cooldown := int32(kedaCooldownPeriod)
	if spec.CooldownPeriod != nil {
		cooldown = *spec.CooldownPeriod
	}
	outcome, why := Mapped, fmt.Sprintf("from %s (%ds)", windowFrom, window)
	switch {
	case minR > 0:
		why += fmt.Sprintf("; cooldownPeriod (%ds) only delays scaling to zero, which minReplicaCount %d rules out", cooldown, minR)
	case cooldown != window:
		outcome = Approximated
		why = fmt.Sprintf("KEDA waits %ds (%s) before removing replicas down to 1 and cooldownPeriod %ds before going to zero; lagscale has one window for every scale-down, so the longer is kept", window, windowFrom, cooldown)
		window = max(window, cooldown)
	default:
		why += fmt.Sprintf(", equal to cooldownPeriod %ds", cooldown)
	}
	if window > maxStabilization {
		window = maxStabilization
		outcome = Approximated
		why += fmt.Sprintf(", capped at lagscale's %ds maximum", maxStabilization)
	}
	s.ScaleDownStabilizationSeconds = ptr.To(window)
	rep.add("spec.cooldownPeriod", outcome, "spec.scaling.scaleDownStabilizationSeconds %d: %s", window, why)

	if behavior != nil {
		if behavior.ScaleUp != nil {
			rep.add("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp", Approximated, "lagscale scales up at once to what the lag needs, in partition-aware steps; HPA scale-up policies and windows are dropped")
		}
		if behavior.ScaleDown != nil && (len(behavior.ScaleDown.Policies) > 0 || behavior.ScaleDown.SelectPolicy != nil) {
			rep.add("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies", Approximated, "lagscale removes replicas once the recommendation stayed lower for the whole window, in partition-aware steps; rate policies are dropped")
		}
	}
	if a := spec.Advanced; a != nil {
		switch {
		case a.RestoreToOriginalReplicaCount && own:
			rep.add("spec.advanced.restoreToOriginalReplicaCount", Unsupported, "the EventConsumer owns its Deployment: deleting it deletes the Deployment")
		case a.RestoreToOriginalReplicaCount:
			rep.add("spec.advanced.restoreToOriginalReplicaCount", Approximated, "deleting the EventConsumer leaves the workload at its current replicas; it does not restore the count from before")
		}
		if a.ScalingModifiers.Formula != "" {
			rep.essential("spec.advanced.scalingModifiers", "formulas over several metrics are not supported: lagscale scales on one group's lag")
		}
		if a.HorizontalPodAutoscalerConfig != nil && a.HorizontalPodAutoscalerConfig.Name != "" {
			rep.add("spec.advanced.horizontalPodAutoscalerConfig.name", Mapped, "not needed: lagscale sets replicas itself, with no HPA")
		}
	}
	if spec.IdleReplicaCount != nil {
		rep.add("spec.idleReplicaCount", Unsupported, "lagscale scales between minReplicas and maxReplicas only")
	}
	if spec.InitialCooldownPeriod != nil {
		rep.add("spec.initialCooldownPeriod", Unsupported, "lagscale applies its stabilization window from the start")
	}
	if spec.Fallback != nil {
		rep.add("spec.fallback", Approximated, "when Kafka cannot be read lagscale keeps the current replicas and never scales down; it does not move to fallback.replicas %d", spec.Fallback.Replicas)
	}
	if v, ok := so.Annotations["autoscaling.keda.sh/paused"]; ok {
		if b, _ := parseBool(v); b {
			s.Paused = true
			rep.add("metadata.annotations[autoscaling.keda.sh/paused]", Mapped, "spec.scaling.paused true")
		}
	}
	if v, ok := so.Annotations["autoscaling.keda.sh/paused-replicas"]; ok {
		s.Paused = true
		rep.add("metadata.annotations[autoscaling.keda.sh/paused-replicas]", Approximated, "spec.scaling.paused true freezes replicas where they are, not at %s", v)
	}
	known := map[string]bool{"scaleTargetRef": true, "pollingInterval": true, "initialCooldownPeriod": true, "cooldownPeriod": true, "idleReplicaCount": true,
		"minReplicaCount": true, "maxReplicaCount": true, "advanced": true, "triggers": true, "fallback": true}
	for _, k := range sortedKeys(so.raw) {
		if !known[k] {
			rep.add("spec."+k, Unsupported, "unknown to migrate; dropped")
		}
	}
}

func defaultNote(absent bool) string {
	if absent {
		return " (KEDA's default, written out)"
	}
	return ""
}

// contractNames are the variables lagscale injects; the workload's own
// values for them are dropped, since spec.kafka now states them.
var contractNames = regexp.MustCompile(`^(KAFKA_(BOOTSTRAP_SERVERS|TOPICS|CONSUMER_GROUP|SECURITY_PROTOCOL|SASL_MECHANISM|SASL_USERNAME|SASL_PASSWORD|TLS_CA_FILE|TLS_CERT_FILE|TLS_KEY_FILE|TLS_INSECURE_SKIP_VERIFY|AUTO_OFFSET_RESET|GROUP_TYPE)|LAGSCALE_[A-Z_]+)$`)

// mapDeployment makes the Deployment's pod template the EventConsumer's.
func mapDeployment(so *ScaledObject, d *appsv1.Deployment, container string, ec *v1alpha1.EventConsumer, rep *Report) {
	tmpl := d.Spec.Template.DeepCopy()
	tmpl.CreationTimestamp = metav1.Time{}
	cs := tmpl.Spec.Containers
	idx := -1
	for i := range cs {
		if cs[i].Name == "handler" {
			idx = i
		}
	}
	if container != "" {
		for i := range cs {
			if cs[i].Name == container && idx != i {
				if idx >= 0 {
					rep.add("spec.scaleTargetRef.envSourceContainerName", Approximated, "lagscale injects the Kafka environment into the container named handler, not %s", container)
				} else if i != 0 {
					cs[0], cs[i] = cs[i], cs[0]
					rep.add("spec.scaleTargetRef.envSourceContainerName", Approximated, "container %s moved first: lagscale injects the Kafka environment into the container named handler, else the first", container)
				}
			}
		}
	}
	if idx < 0 {
		idx = 0
	}
	if len(cs) > 0 {
		var keep []corev1.EnvVar
		for _, e := range cs[idx].Env {
			if contractNames.MatchString(e.Name) {
				rep.add(fmt.Sprintf("Deployment %s container %s env %s", d.Name, cs[idx].Name, e.Name), Approximated, "dropped: lagscale injects it from the EventConsumer's spec")
				continue
			}
			keep = append(keep, e)
		}
		cs[idx].Env = keep
	}
	ec.Spec.Template = tmpl
	rep.add("spec.scaleTargetRef", Mapped, "Deployment %s's pod template is spec.template; lagscale creates and owns the Deployment %s from it", d.Name, ec.Name)
	if d.Spec.Replicas != nil {
		rep.add(fmt.Sprintf("Deployment %s spec.replicas", d.Name), Mapped, "not copied: lagscale sets replicas")
	}
	if d.Spec.Strategy.Type != "" || d.Spec.MinReadySeconds != 0 || d.Spec.RevisionHistoryLimit != nil || d.Spec.ProgressDeadlineSeconds != nil {
		rep.add(fmt.Sprintf("Deployment %s spec.strategy, minReadySeconds, revisionHistoryLimit, progressDeadlineSeconds", d.Name), Unsupported, "an EventConsumer carries the pod template only; lagscale's Deployment uses the defaults")
	}
}

// shareClusters puts the connection of consumers that share brokers,
// TLS and SASL in one namespace into a KafkaCluster they reference, so
// that one client and one poll loop serve them all.
func shareClusters(ecs []*v1alpha1.EventConsumer, reps []*Report) []*v1alpha1.KafkaCluster {
	type group struct {
		key string
		ecs []*v1alpha1.EventConsumer
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, ec := range ecs {
		servers := append([]string(nil), ec.Spec.Kafka.BootstrapServers...)
		sort.Strings(servers)
		tls, _ := json.Marshal(ec.Spec.Kafka.TLS)
		sasl, _ := json.Marshal(ec.Spec.Kafka.SASL)
		key := ec.Namespace + "|" + strings.Join(servers, ",") + "|" + string(tls) + "|" + string(sasl)
		g, ok := byKey[key]
		if !ok {
			g = &group{key: key}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.ecs = append(g.ecs, ec)
	}
	repOf := map[string]*Report{}
	for _, r := range reps {
		repOf[r.ScaledObject] = r
	}
	taken := map[string]bool{}
	var out []*v1alpha1.KafkaCluster
	for _, g := range groups {
		if len(g.ecs) < 2 {
			continue
		}
		first := g.ecs[0]
		name := clusterName(first.Spec.Kafka.BootstrapServers[0])
		for n := 2; taken[first.Namespace+"/"+name]; n++ {
			name = fmt.Sprintf("%s-%d", clusterName(first.Spec.Kafka.BootstrapServers[0]), n)
		}
		taken[first.Namespace+"/"+name] = true
		kc := &v1alpha1.KafkaCluster{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "KafkaCluster"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: first.Namespace},
			Spec: v1alpha1.KafkaClusterSpec{BootstrapServers: first.Spec.Kafka.BootstrapServers,
				TLS: first.Spec.Kafka.TLS, SASL: first.Spec.Kafka.SASL},
		}
		out = append(out, kc)
		var names []string
		for _, ec := range g.ecs {
			names = append(names, ec.Name)
		}
		for _, ec := range g.ecs {
			ec.Spec.Kafka = v1alpha1.KafkaConnection{ClusterRef: &v1alpha1.LocalObjectRef{Name: name}}
			key := ec.Namespace + "/" + ec.Name
			if ec.Namespace == "" {
				key = ec.Name
			}
			if r := repOf[key]; r != nil {
				r.add("brokers", Mapped, "spec.kafka.clusterRef %s: KafkaCluster shared by %s, which use the same brokers, TLS and SASL", name, strings.Join(names, ", "))
			}
		}
	}
	return out
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// clusterName derives a KafkaCluster name from a broker address:
// "kafka-0.kafka.svc:9092" gives "kafka-0-kafka-svc".
func clusterName(server string) string {
	host := server
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	n := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(host), "-"), "-")
	if len(n) > 50 {
		n = strings.TrimRight(n[:50], "-")
	}
	if n == "" {
		n = "kafka"
	}
	return n
}
