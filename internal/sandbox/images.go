package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Images the sandbox knows without a mapping file. Any tag or digest of
// these repositories maps to the local build.
const (
	// ExampleHandlerImage is examples/handler's image; the sandbox runs
	// bin/example-handler for it (`make sandbox-tools` builds it).
	ExampleHandlerImage = "lagscale/example-handler:dev"
	// NodeHandlerImage is examples/node-handler's image; the sandbox runs
	// `node examples/node-handler/index.js` for it.
	NodeHandlerImage = "lagscale/example-node-handler:dev"
	// JavaHandlerImage is examples/java-handler's image; the sandbox runs
	// `java -jar examples/java-handler/target/java-handler.jar` for it
	// (`make java-handler` builds the jar).
	JavaHandlerImage = "lagscale/example-java-handler:dev"
	// JavaStreamsHandlerImage is examples/java-streams-handler's image, a
	// Kafka Streams application; the sandbox runs `java -jar
	// examples/java-streams-handler/target/java-streams-handler.jar` for it
	// (`make java-streams-handler` builds the jar).
	JavaStreamsHandlerImage = "lagscale/example-java-streams-handler:dev"
)

// ImageMap maps container images to local commands. A key is a full image
// reference ("repo/name:tag") or a repository ("repo/name"), which matches
// every tag and digest of it; a full reference wins.
type ImageMap map[string][]string

// DefaultImageMap maps the example images to their local builds.
func DefaultImageMap(root, binDir string) ImageMap {
	goHandler := []string{filepath.Join(binDir, "example-handler")}
	nodeHandler := []string{"node", filepath.Join(root, "examples", "node-handler", "index.js")}
	javaHandler := []string{"java", "-Xmx256m", "-jar", filepath.Join(root, "examples", "java-handler", "target", "java-handler.jar")}
	// A small heap, the serial collector and the C1 compiler only: several
	// of these JVMs share a laptop (or two CI cores) with the broker.
	streamsHandler := []string{"java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar",
		filepath.Join(root, "examples", "java-streams-handler", "target", "java-streams-handler.jar")}
	return ImageMap{
		"lagscale/example-handler":                      goHandler,
		"ghcr.io/lagscale/example-handler":              goHandler,
		"docker.io/lagscale/example-handler":            goHandler,
		"lagscale/example-node-handler":                 nodeHandler,
		"ghcr.io/lagscale/example-node-handler":         nodeHandler,
		"lagscale/example-java-handler":                 javaHandler,
		"ghcr.io/lagscale/example-java-handler":         javaHandler,
		"lagscale/example-java-streams-handler":         streamsHandler,
		"ghcr.io/lagscale/example-java-streams-handler": streamsHandler,
	}
}

// LoadImageMap is DefaultImageMap plus the entries of file (when not
// empty), a YAML map from image to command:
//
//	ghcr.io/acme/orders-handler: ["/home/me/src/orders/bin/handler", "--verbose"]
//	acme/python-handler:0.3: ["python3", "handler.py"]
//
// A relative path in a command's first element is taken relative to the
// file.
func LoadImageMap(root, binDir, file string) (ImageMap, error) {
	m := DefaultImageMap(root, binDir)
	if file == "" {
		return m, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read image mapping: %w", err)
	}
	extra, err := ParseImageMap(raw, filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for k, v := range extra {
		m[k] = v
	}
	return m, nil
}

// ParseImageMap parses a mapping file's content; base resolves relative
// command paths.
func ParseImageMap(raw []byte, base string) (ImageMap, error) {
	var m map[string][]string
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		return nil, fmt.Errorf("want a map from image to command (a list of strings): %w", err)
	}
	out := ImageMap{}
	for image, cmd := range m {
		if strings.TrimSpace(image) == "" {
			return nil, fmt.Errorf("empty image name")
		}
		if len(cmd) == 0 || cmd[0] == "" {
			return nil, fmt.Errorf("image %q maps to an empty command", image)
		}
		cmd = append([]string(nil), cmd...)
		if strings.Contains(cmd[0], "/") && !filepath.IsAbs(cmd[0]) {
			cmd[0] = filepath.Join(base, cmd[0])
		}
		out[image] = cmd
	}
	return out, nil
}

// Lookup returns the command for image: the entry for the full reference,
// else for its repository (tag and digest removed).
func (m ImageMap) Lookup(image string) ([]string, bool) {
	if cmd, ok := m[image]; ok {
		return cmd, true
	}
	cmd, ok := m[imageRepository(image)]
	return cmd, ok
}

// Images lists the mapped images, sorted.
func (m ImageMap) Images() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// imageRepository strips the digest and the tag from an image reference.
// A colon before the last slash belongs to a registry's port.
func imageRepository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}
