package sandbox

import (
	"reflect"
	"strings"
	"testing"
)

func TestImageMapLookup(t *testing.T) {
	m := DefaultImageMap("/repo", "/repo/bin")
	extra, err := ParseImageMap([]byte(`
ghcr.io/acme/orders: ["bin/orders", "--verbose"]
ghcr.io/acme/orders:v2: ["/opt/orders-v2"]
registry.local:5000/team/py: ["python3", "handler.py"]
`), "/home/me")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		m[k] = v
	}
	tests := []struct {
		name  string
		image string
		want  []string
	}{
		{"example handler, dev tag", ExampleHandlerImage, []string{"/repo/bin/example-handler"}},
		{"example handler, released tag", "ghcr.io/lagscale/example-handler:0.1.0", []string{"/repo/bin/example-handler"}},
		{"example handler, digest", "lagscale/example-handler@sha256:abc", []string{"/repo/bin/example-handler"}},
		{"node example", NodeHandlerImage, []string{"node", "/repo/examples/node-handler/index.js"}},
		{"java example", JavaHandlerImage, []string{"java", "-Xmx256m", "-jar", "/repo/examples/java-handler/target/java-handler.jar"}},
		{"java streams example", JavaStreamsHandlerImage, []string{"java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", "/repo/examples/java-streams-handler/target/java-streams-handler.jar"}},
		{"mapped repository, any tag; relative path from the file", "ghcr.io/acme/orders:v1", []string{"/home/me/bin/orders", "--verbose"}},
		{"full reference wins over repository", "ghcr.io/acme/orders:v2", []string{"/opt/orders-v2"}},
		{"registry with a port", "registry.local:5000/team/py:3", []string{"python3", "handler.py"}},
		{"unmapped", "nginx:1.27", nil},
		{"unmapped registry port is not a tag", "registry.local:5000/other", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := m.Lookup(tt.image)
			if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Lookup(%q) = %v, %v; want %v", tt.image, got, ok, tt.want)
			}
		})
	}
}

func TestParseImageMapRejects(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty command", `acme/x: []`, "empty command"},
		{"command not a list", `acme/x: "bin/x"`, "want a map from image to command"},
		{"not a map", `- acme/x`, "want a map from image to command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseImageMap([]byte(tt.in), "/")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
