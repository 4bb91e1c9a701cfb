package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lagscale/lagscale/internal/sandbox"
)

const sandboxUsage = `Usage:
  lagscale sandbox up [--dir DIR] [--kafka kfake|apache] [--kafka-port 9092] [--api-port 6443] [--images FILE] [--demo [--group-type streams] [--keep]]
  lagscale sandbox down [--dir DIR]
  lagscale sandbox logs [--dir DIR] [-f] POD

up starts a local cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and three kwok fake nodes (built from source by
'make sandbox-tools', which up runs itself when something is missing), a
Kafka broker (kfake in process, data kept in DIR/kafka; or with --kafka apache
Apache Kafka from the jars of 'make kafka', data in DIR/kafka-apache, log in
DIR/logs/kafka.log), the lagscale operator, and a
pod runner that runs the image of each pod as a local process, whoever
created the pod (an EventConsumer's Deployment, or a workload of your own
that an EventConsumer scales through spec.scaleTargetRef):
  lagscale/example-handler:*       bin/example-handler
  lagscale/example-node-handler:*  node examples/node-handler/index.js
  lagscale/example-java-handler:*  java -jar examples/java-handler/target/java-handler.jar
  lagscale/example-java-streams-handler:*
                                   java -jar examples/java-streams-handler/target/java-streams-handler.jar
and others through --images FILE, a YAML map from image to command:
  ghcr.io/acme/orders: ["/home/me/orders/bin/handler"]
It prints the kubeconfig to export and runs until Ctrl-C, which stops
everything it started. --demo applies an example EventConsumer, drives a
burst of load and prints what lagscale does about it; with --group-type
streams (and --kafka apache) the EventConsumer is groupType Streams and the
handler the Kafka Streams example, scaled up to its task count, and the demo
checks that every input record is counted exactly once.

down stops, by PID, everything a running 'up' in DIR started.
logs prints a handler pod's output (POD or NAMESPACE/POD).
`

// runSandbox implements `lagscale sandbox`.
func runSandbox(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, sandboxUsage)
		return errors.New("sandbox: want a subcommand: up, down or logs")
	}
	switch args[0] {
	case "up":
		return sandboxUp(args[1:], stdout)
	case "down":
		return sandboxDown(args[1:], stdout)
	case "logs":
		return sandboxLogs(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, sandboxUsage)
		return nil
	}
	fmt.Fprint(stdout, sandboxUsage)
	return fmt.Errorf("sandbox: unknown subcommand %q", args[0])
}

func sandboxFlags(name string, stdout io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("sandbox "+name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprint(stdout, sandboxUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	dir := fs.String("dir", sandbox.DefaultDir(), "sandbox directory (kubeconfig, data, logs, pid file)")
	return fs, dir
}

func sandboxUp(args []string, stdout io.Writer) error {
	fs, dir := sandboxFlags("up", stdout)
	kafka := fs.String("kafka", sandbox.KafkaKfake, "the broker: kfake (in process, starts at once) or apache (Apache Kafka from the jars of make kafka, needs a JDK)")
	kafkaPort := fs.Int("kafka-port", 9092, "Kafka port (PLAINTEXT) on 127.0.0.1; 0 picks a free one")
	apiPort := fs.Int("api-port", 6443, "kube-apiserver port on 127.0.0.1; 0 picks a free one")
	images := fs.String("images", "", "YAML file mapping more images to local commands")
	demo := fs.Bool("demo", false, "apply an example EventConsumer, drive load and print what happens")
	keep := fs.Bool("keep", false, "with --demo: keep the sandbox running after the demo until Ctrl-C")
	noBuild := fs.Bool("no-build", false, "fail instead of running `make sandbox-tools` when a binary is missing")
	chart := fs.String("chart", "", "with --demo: where to write the PNG chart (default DIR/demo.png)")
	groupType := fs.String("group-type", "", "with --demo: streams runs the Kafka Streams phase (needs --kafka apache and `make java-streams-handler`)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := checkGroupTypeFlag(*groupType, *demo, *kafka); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := sandbox.Up(ctx, sandbox.Options{
		Dir:          *dir,
		Kafka:        *kafka,
		KafkaPort:    *kafkaPort,
		APIPort:      *apiPort,
		ImagesFile:   *images,
		Progress:     stdout,
		BuildMissing: !*noBuild,
	})
	if err != nil {
		if s != nil {
			printStopped(stdout, s.Stop())
		}
		return err
	}
	defer func() { printStopped(stdout, s.Stop()) }()
	fmt.Fprintf(stdout, "\nKafka:       %s (%s)\nLogs:        %s/logs, pods in %s/pods (lagscale sandbox logs POD)\nStop:        Ctrl-C, or lagscale sandbox down --dir %s\n\nexport KUBECONFIG=%s\n\n",
		s.KafkaAddr(), s.KafkaKind(), s.Dir(), s.Dir(), s.Dir(), s.Kubeconfig())

	if *demo {
		out := *chart
		if out == "" {
			out = s.Dir() + "/demo.png"
		}
		res, err := sandbox.RunDemo(ctx, s, sandbox.DemoOptions{Out: stdout, ChartPath: out, GroupType: *groupType})
		if err != nil {
			return err
		}
		if res.Counts != nil && !res.Counts.ExactlyOnce() {
			return fmt.Errorf("demo: the Streams application did not count every input record exactly once (see the summary)")
		}
		if !*keep {
			return nil
		}
		fmt.Fprintln(stdout, "demo done; the sandbox keeps running until Ctrl-C")
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping the sandbox")
		return nil
	case err := <-s.OperatorDone():
		return fmt.Errorf("operator stopped: %v; see %s/logs/operator.log", err, s.Dir())
	}
}

// checkGroupTypeFlag refuses --group-type where the demo cannot run it,
// before anything starts.
func checkGroupTypeFlag(groupType string, demo bool, kafka string) error {
	switch {
	case groupType == "":
		return nil
	case !demo:
		return errors.New("sandbox up: --group-type goes with --demo")
	case groupType != sandbox.DemoGroupStreams:
		return fmt.Errorf("sandbox up: unknown --group-type %q: want %s", groupType, sandbox.DemoGroupStreams)
	case kafka != sandbox.KafkaApache:
		return errors.New("sandbox up: --group-type streams needs --kafka apache (kfake has no streams groups)")
	}
	return nil
}

func printStopped(w io.Writer, stopped []string) {
	for _, s := range stopped {
		fmt.Fprintln(w, "stopped", s)
	}
}

func sandboxDown(args []string, stdout io.Writer) error {
	fs, dir := sandboxFlags("down", stdout)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	stopped, err := sandbox.Down(*dir)
	printStopped(stdout, stopped)
	if err != nil {
		return err
	}
	if len(stopped) == 0 {
		fmt.Fprintf(stdout, "no sandbox process was running in %s\n", *dir)
	}
	return nil
}

func sandboxLogs(args []string, stdout io.Writer) error {
	fs, dir := sandboxFlags("logs", stdout)
	follow := fs.Bool("f", false, "keep printing what the handler writes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("sandbox logs: want one pod name (POD or NAMESPACE/POD), after the flags: lagscale sandbox logs [-f] [--dir DIR] POD")
	}
	if _, err := os.Stat(*dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sandbox logs: no sandbox in %s: start one with `lagscale sandbox up` (or pass --dir)", *dir)
	}
	path, err := sandbox.PodLogs(*dir, fs.Arg(0))
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		if _, err := io.Copy(stdout, f); err != nil {
			return err
		}
		if !*follow {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}
