// Command benchratio compares pkg/handler's BenchmarkHandlerNoop with
// BenchmarkBareFranzGoLoop. The two are noisy on a small machine (the
// broker runs in the same process), so it runs them alternately, each in a
// process of its own, and reports the median records/s of each and the
// ratio of the medians, per record size.
//
//	go test -c -o bin/handler.test ./pkg/handler
//	go run ./hack/benchratio -test bin/handler.test -records 500000 -count 11
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

func main() {
	bin := flag.String("test", "bin/handler.test", "test binary of ./pkg/handler")
	records := flag.Int("records", 500000, "records per run (-test.benchtime Nx)")
	count := flag.Int("count", 11, "runs of each benchmark per size")
	sizes := flag.String("sizes", "8,256", "value sizes in bytes, as the benchmarks name them")
	flag.Parse()

	fmt.Printf("%-10s %14s %14s %8s\n", "value", "sdk records/s", "bare records/s", "sdk/bare")
	for _, size := range strings.Split(*sizes, ",") {
		var sdk, bare []float64
		for range *count {
			sdk = append(sdk, run(*bin, "BenchmarkHandlerNoop/value="+size+"B", *records))
			bare = append(bare, run(*bin, "BenchmarkBareFranzGoLoop/value="+size+"B", *records))
		}
		s, b := median(sdk), median(bare)
		fmt.Printf("%-10s %14.0f %14.0f %8.3f\n", size+"B", s, b, s/b)
	}
}

// run runs one benchmark once and returns its records/s metric.
func run(bin, bench string, records int) float64 {
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", "^"+strings.ReplaceAll(bench, "/", "$/^")+"$",
		"-test.benchtime", strconv.Itoa(records)+"x")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "benchratio: %s: %v\n%s", bench, err, out.String())
		os.Exit(1)
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 1; i < len(f); i++ {
			if f[i] == "records/s" {
				v, err := strconv.ParseFloat(f[i-1], 64)
				if err == nil {
					return v
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "benchratio: %s printed no records/s:\n%s", bench, out.String())
	os.Exit(1)
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
