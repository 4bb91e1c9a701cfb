package contract_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lagscale/lagscale/pkg/contract"
	"github.com/lagscale/lagscale/pkg/handler"
)

// contractDoc is the one home of the handler contract's table.
const contractDoc = "../../docs/handler-contract.md"

// TestHandlerContractAgrees holds docs/handler-contract.md, the Go
// constants (pkg/contract and pkg/handler) and the Node.js SDK's
// lib/config.js to the same variable names and the same defaults, so that
// the contract cannot drift apart in one of them again.
func TestHandlerContractAgrees(t *testing.T) {
	doc := readContractTable(t)
	goNames := envConstants(t, ".", "../handler")
	goDefaults := goSDKDefaults(t)
	node := nodeSDKContract(t)

	docNames := slices.Sorted(maps.Keys(doc))
	if got := slices.Sorted(maps.Keys(goNames)); !slices.Equal(docNames, got) {
		t.Errorf("docs/handler-contract.md and the Env constants of pkg/contract and pkg/handler disagree: %s", nameDiff(docNames, got))
	}
	nodeNames := make(map[string]bool)
	for _, v := range node.Env {
		nodeNames[v] = true
	}
	if got := slices.Sorted(maps.Keys(nodeNames)); !slices.Equal(docNames, got) {
		t.Errorf("docs/handler-contract.md and sdk/node/lib/config.js's Env disagree: %s", nameDiff(docNames, got))
	}

	for _, name := range docNames {
		want := doc[name]
		if got, ok := goDefaults[name]; !ok {
			t.Errorf("%s: the test does not know which field of handler.Config it sets: add it to goSDKDefaults", name)
		} else if got != want {
			t.Errorf("%s: pkg/handler defaults it to %q, docs/handler-contract.md says %q", name, got, want)
		}
		got, ok := node.defaultOf(name)
		if !ok {
			t.Errorf("%s: sdk/node/lib/config.js's configFromEnv has no field for it: name the field in nodeFields", name)
		} else if got != want {
			t.Errorf("%s: sdk/node/lib/config.js defaults it to %q, docs/handler-contract.md says %q", name, got, want)
		}
	}
	if contract.DefaultOffsetReset != doc[contract.EnvAutoOffsetReset] {
		t.Errorf("contract.DefaultOffsetReset = %q, docs/handler-contract.md says %q", contract.DefaultOffsetReset, doc[contract.EnvAutoOffsetReset])
	}
	if contract.DefaultIsolationLevel != doc[contract.EnvIsolationLevel] {
		t.Errorf("contract.DefaultIsolationLevel = %q, docs/handler-contract.md says %q", contract.DefaultIsolationLevel, doc[contract.EnvIsolationLevel])
	}
}

// readContractTable returns the table's variables and their defaults ("" for
// "—"): the rows whose first cell is a backticked name.
func readContractTable(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(contractDoc)
	if err != nil {
		t.Fatalf("the contract's table lives in docs/handler-contract.md: %v", err)
	}
	defer f.Close()
	rows := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 4 {
			t.Fatalf("docs/handler-contract.md: row %q has %d cells, want 4 (variable, holds, default, set from)", line, len(cells))
		}
		name := strings.Trim(cells[0], "`")
		def := strings.TrimSpace(cells[2])
		if def == "—" {
			def = ""
		} else {
			def = strings.Trim(def, "`")
		}
		if _, dup := rows[name]; dup {
			t.Errorf("docs/handler-contract.md lists %s twice", name)
		}
		rows[name] = def
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("docs/handler-contract.md has no table rows starting with | `NAME`")
	}
	return rows
}

// envConstant matches a gofmt'd declaration of an Env constant to a
// string literal; pkg/handler's re-exports of pkg/contract's names are
// selector expressions and do not match.
var envConstant = regexp.MustCompile(`(?m)^\s*Env\w+\s*=\s*"([A-Z_]+)"`)

// envConstants returns the values of the Env constants declared in the
// non-test Go files of dirs, so that a constant added to the code and not to
// the table (or the other way round) fails the test.
func envConstants(t *testing.T, dirs ...string) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range envConstant.FindAllSubmatch(src, -1) {
				names[string(m[1])] = true
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("no Env constants found in %v", dirs)
	}
	return names
}

// minimalEnv is the least a handler needs; every other variable is unset, so
// what the SDKs fill in is their default.
var minimalEnv = map[string]string{
	contract.EnvBootstrapServers: "kafka:9092",
	contract.EnvTopics:           "orders",
	contract.EnvConsumerGroup:    "workers",
}

// goSDKDefaults returns, per variable, what pkg/handler's ConfigFromEnv
// makes of the minimal environment, as the table would write it.
func goSDKDefaults(t *testing.T) map[string]string {
	t.Helper()
	c, err := handler.ConfigFromEnv(func(k string) string { return minimalEnv[k] })
	if err != nil {
		t.Fatalf("handler.ConfigFromEnv(minimal environment): %v", err)
	}
	unset := func(name, v string) string {
		if _, given := minimalEnv[name]; given {
			return ""
		}
		return v
	}
	return map[string]string{
		contract.EnvBootstrapServers: unset(contract.EnvBootstrapServers, strings.Join(c.Brokers, ",")),
		contract.EnvTopics:           unset(contract.EnvTopics, strings.Join(c.Topics, ",")),
		contract.EnvConsumerGroup:    unset(contract.EnvConsumerGroup, c.Group),
		contract.EnvSecurityProtocol: c.SecurityProtocol,
		contract.EnvSASLMechanism:    c.SASLMechanism,
		contract.EnvSASLUsername:     c.SASLUsername,
		contract.EnvSASLPassword:     c.SASLPassword,
		contract.EnvTLSCAFile:        c.TLSCAFile,
		contract.EnvTLSCertFile:      c.TLSCertFile,
		contract.EnvTLSKeyFile:       c.TLSKeyFile,
		contract.EnvTLSInsecure:      strconv.FormatBool(c.TLSInsecureSkipVerify),
		contract.EnvAutoOffsetReset:  c.AutoOffsetReset,
		contract.EnvGroupType:        c.GroupType,
		contract.EnvIsolationLevel:   c.IsolationLevel,
		contract.EnvConsumer:         c.Consumer,
		contract.EnvDeadLetterTopic:  c.DeadLetterTopic,
		handler.EnvHTTPAddr:          c.HTTPAddr,
	}
}

// nodeContract is what sdk/node/lib/config.js exports: its Env table and
// the config configFromEnv builds from the minimal environment.
type nodeContract struct {
	Env    map[string]string `json:"env"`
	Config map[string]any    `json:"config"`
}

// nodeFields names the configFromEnv fields whose name differs from the key
// of their variable in Env.
var nodeFields = map[string]string{
	"bootstrapServers": "brokers",
	"consumerGroup":    "group",
	"tlsInsecure":      "tlsInsecureSkipVerify",
}

// defaultOf returns the Node SDK's default for the variable name, as the
// table would write it.
func (n nodeContract) defaultOf(name string) (string, bool) {
	for key, v := range n.Env {
		if v != name {
			continue
		}
		if _, given := minimalEnv[name]; given {
			return "", true
		}
		field := key
		if f, ok := nodeFields[key]; ok {
			field = f
		}
		val, ok := n.Config[field]
		if !ok {
			return "", false
		}
		switch val := val.(type) {
		case string:
			return val, true
		case bool:
			return strconv.FormatBool(val), true
		default:
			b, _ := json.Marshal(val)
			return string(b), true
		}
	}
	return "", false
}

// nodeSDKContract loads sdk/node/lib/config.js in node. config.js needs
// nothing from npm, so this runs without `npm ci`.
func nodeSDKContract(t *testing.T) nodeContract {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: the Node.js SDK's contract is read by running it; install Node.js 20 or newer (apt-get install nodejs): %v", err)
	}
	envJSON, err := json.Marshal(minimalEnv)
	if err != nil {
		t.Fatal(err)
	}
	const script = `const c = require(process.argv[1]);
const cfg = c.configFromEnv(JSON.parse(process.argv[2]));
process.stdout.write(JSON.stringify({ env: c.Env, config: cfg }))`
	cfgPath, err := filepath.Abs("../../sdk/node/lib/config.js")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "-e", script, cfgPath, string(envJSON)).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("reading sdk/node/lib/config.js with node: %v\n%s", err, msg)
	}
	var n nodeContract
	if err := json.Unmarshal(out, &n); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	return n
}

// nameDiff says which names only the table has and which only the code has.
func nameDiff(doc, code []string) string {
	var onlyDoc, onlyCode []string
	for _, n := range doc {
		if !slices.Contains(code, n) {
			onlyDoc = append(onlyDoc, n)
		}
	}
	for _, n := range code {
		if !slices.Contains(doc, n) {
			onlyCode = append(onlyCode, n)
		}
	}
	return fmt.Sprintf("only the table has %v, only the code has %v", onlyDoc, onlyCode)
}
