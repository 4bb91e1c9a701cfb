package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpApacheNeedsJarsAndJava: `up --kafka apache` without the jars or a
// JDK fails before anything starts, naming `make kafka`.
func TestUpApacheNeedsJarsAndJava(t *testing.T) {
	wd, _ := os.Getwd()
	root, ok := FindRoot(wd)
	if !ok {
		t.Fatal("cannot find the lagscale repository from " + wd)
	}
	check := func(t *testing.T, o Options, want ...string) {
		t.Helper()
		o.Dir, o.Root, o.Kafka = t.TempDir(), root, KafkaApache
		if o.BinDir == "" {
			o.BinDir = t.TempDir()
		}
		s, err := Up(context.Background(), o)
		if err == nil {
			s.Stop()
			t.Fatal("Up succeeded without the Apache Kafka jars or java")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if _, err := os.Stat(filepath.Join(o.Dir, "pids")); err == nil {
			t.Errorf("Up recorded processes before failing: %s exists", filepath.Join(o.Dir, "pids"))
		}
	}
	t.Run("no jars", func(t *testing.T) {
		t.Setenv("JAVA_HOME", "")
		t.Setenv("PATH", t.TempDir())
		java := filepath.Join(os.Getenv("PATH"), "java")
		if err := os.WriteFile(java, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		check(t, Options{}, "Apache Kafka 4.4.0 is not resolved", "run `make kafka`")
	})
	t.Run("no java", func(t *testing.T) {
		t.Setenv("JAVA_HOME", "")
		t.Setenv("PATH", t.TempDir())
		check(t, Options{}, "needs a JDK", "`make kafka`")
	})
}

// TestUnknownKafka: a typo in --kafka is an error, not kfake.
func TestUnknownKafka(t *testing.T) {
	o := Options{Dir: t.TempDir(), Root: t.TempDir(), Kafka: "apache-kafka"}
	err := o.defaults()
	if err == nil || !strings.Contains(err.Error(), `unknown Kafka broker "apache-kafka"`) {
		t.Fatalf("defaults() = %v, want an unknown broker error", err)
	}
}
