// Command kfake runs franz-go's in-process Kafka broker (kfake) on its own,
// for tests and benchmarks of handlers that are not written in Go: the
// Node.js SDK's tests start it, read the bootstrap address from its first
// line of output and stop it with SIGTERM (or by closing its stdin).
//
//	go run ./hack/kfake -brokers 1
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.Int("brokers", 1, "number of brokers")
	flag.Parse()
	c, err := kfake.NewCluster(kfake.NumBrokers(*brokers), kfake.AllowAutoTopicCreation())
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println(strings.Join(c.ListenAddrs(), ","))

	// Stop on a signal or when the parent closes stdin, so that a test
	// runner that dies without cleaning up does not leave a broker behind.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); done <- struct{}{} }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; done <- struct{}{} }()
	<-done
}
