// Command crdtrim removes the field descriptions that controller-gen copies
// from Kubernetes' own PodTemplateSpec into the EventConsumer CRD, and bounds
// the lists and names that the CEL rules on env read.
//
// The API server refuses a CEL rule whose estimated cost is too high, and it
// estimates an unbounded list or string from the largest request. The core
// types carry no maxItems or maxLength, and Go markers cannot add them to
// types of another module, so they are added here: at most
// maxContainers containers, maxEnv env variables per container and
// maxEnvName characters per variable name. Real pods stay far below these.
//
// Those descriptions make the CRD larger than the 256 KiB that client-side
// `kubectl apply` can store in its last-applied annotation. lagscale's own
// fields keep their descriptions (kubectl explain shows them); the pod
// template's fields are documented by Kubernetes itself.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: crdtrim CRD.yaml...")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		if err := trim(path); err != nil {
			fmt.Fprintf(os.Stderr, "crdtrim: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func trim(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return err
	}
	versions, _ := dig(crd, "spec", "versions").([]any)
	for _, v := range versions {
		props, _ := dig(v, "schema", "openAPIV3Schema", "properties", "spec", "properties").(map[string]any)
		if err := bound(props); err != nil {
			return err
		}
		for _, name := range []string{"template"} {
			if field, ok := props[name].(map[string]any); ok {
				for k, child := range field {
					if k != "description" {
						stripDescriptions(child)
					}
				}
			}
		}
		// The handler's env and resources embed core types too.
		if h, ok := props["handler"].(map[string]any); ok {
			if hp, ok := h["properties"].(map[string]any); ok {
				for _, name := range []string{"env", "resources"} {
					if field, ok := hp[name].(map[string]any); ok {
						for k, child := range field {
							if k != "description" {
								stripDescriptions(child)
							}
						}
					}
				}
			}
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func stripDescriptions(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "description")
		// No field of the core pod types is itself named "description",
		// so every "description" key here is the schema keyword.
		for _, child := range t {
			stripDescriptions(child)
		}
	case []any:
		for _, child := range t {
			stripDescriptions(child)
		}
	}
}

// Bounds the CEL rules on env need; see the package comment.
const (
	maxContainers = 64
	maxEnv        = 1024
	maxEnvName    = 256
)

// bound sets maxItems and maxLength on the env lists the CEL rules of
// handler.env and template read.
func bound(specProps map[string]any) error {
	set := func(schema any, key string, n int, path string) error {
		m, ok := schema.(map[string]any)
		if !ok {
			return fmt.Errorf("schema %s not found: did the CRD's shape change?", path)
		}
		m[key] = n
		return nil
	}
	if err := set(dig(specProps, "handler", "properties", "env", "items", "properties", "name"), "maxLength", maxEnvName, "spec.handler.env[].name"); err != nil {
		return err
	}
	podSpec := dig(specProps, "template", "properties", "spec", "properties")
	for _, list := range []string{"containers", "initContainers"} {
		c := dig(podSpec, list)
		if err := set(c, "maxItems", maxContainers, "spec.template.spec."+list); err != nil {
			return err
		}
		env := dig(c, "items", "properties", "env")
		if err := set(env, "maxItems", maxEnv, "spec.template.spec."+list+"[].env"); err != nil {
			return err
		}
		if err := set(dig(env, "items", "properties", "name"), "maxLength", maxEnvName, "spec.template.spec."+list+"[].env[].name"); err != nil {
			return err
		}
	}
	return nil
}
