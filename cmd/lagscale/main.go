// Command lagscale is lagscale's command-line tool: a local sandbox
// cluster, a load generator, the autoscaling simulator, a migration from
// KEDA.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `Usage: lagscale COMMAND [flags]

Commands:
  sandbox   run a local cluster with Kafka and the operator (up, down, logs)
  produce   write records to a topic at a paced rate (lagscale produce -h)
  sim       compare autoscaling policies in a simulator (lagscale sim -h)
  lag       show an EventConsumer's per-partition lag (lagscale lag NAME -n NAMESPACE)
  migrate   turn KEDA ScaledObjects with Kafka triggers into EventConsumers (lagscale migrate -f FILE|-)
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lagscale:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return fmt.Errorf("want a command")
	}
	switch args[0] {
	case "sandbox":
		return runSandbox(args[1:], stdout)
	case "produce":
		return runProduce(args[1:], stdout)
	case "sim":
		return runSim(args[1:], stdout)
	case "lag":
		return runLag(args[1:], stdout)
	case "migrate":
		return runMigrate(args[1:], os.Stdin, stdout, os.Stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stdout, usage)
	return fmt.Errorf("unknown command %q: want %s (lagscale help)", args[0], strings.Join(commands(), ", "))
}

// commands are the command names the usage lists, so that the error for an
// unknown command names every one of them.
func commands() []string {
	var out []string
	_, list, _ := strings.Cut(usage, "Commands:\n")
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}
