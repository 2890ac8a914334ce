package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// Image is what one image of the project holds on this machine: read-only layers (host paths
// mounted at the image's paths), its entrypoint, cmd, environment, working dir and user.
type Image struct {
	Description string            `json:"description"`
	Layers      []Layer           `json:"layers"`
	Entrypoint  []string          `json:"entrypoint"`
	Cmd         []string          `json:"cmd"`
	Env         map[string]string `json:"env"`
	WorkingDir  string            `json:"workingDir"`
	// User is "uid:gid" (the Dockerfile's USER).
	User string `json:"user"`
	// Dirs are created in the container's root (owned by User), like the Dockerfile's mkdir/chown.
	Dirs []string `json:"dirs"`
}

// Layer mounts a host path read-only at a path of the container.
type Layer struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ImageTable maps image repositories (no tag, no digest) to images.
type ImageTable struct {
	File   string
	Images map[string]Image `json:"images"`
}

var varPattern = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)\}`)

func expand(s string, vars map[string]string) (string, error) {
	var missing []string
	out := varPattern.ReplaceAllStringFunc(s, func(m string) string {
		name := varPattern.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variable(s) %s in %q", strings.Join(missing, ", "), s)
	}
	return out, nil
}

func loadImageTable(path string, vars map[string]string) (*ImageTable, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t ImageTable
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("image table %s: %w", path, err)
	}
	t.File = path
	for name, img := range t.Images {
		ex := func(s string) string {
			v, err2 := expand(s, vars)
			if err2 != nil && err == nil {
				err = fmt.Errorf("image %s: %w", name, err2)
			}
			return v
		}
		for i := range img.Layers {
			img.Layers[i].From = ex(img.Layers[i].From)
			img.Layers[i].To = ex(img.Layers[i].To)
			if _, statErr := os.Stat(img.Layers[i].From); statErr != nil && err == nil {
				err = fmt.Errorf("image %s: layer %s: %w", name, img.Layers[i].From, statErr)
			}
		}
		for i := range img.Entrypoint {
			img.Entrypoint[i] = ex(img.Entrypoint[i])
		}
		for i := range img.Cmd {
			img.Cmd[i] = ex(img.Cmd[i])
		}
		for k, v := range img.Env {
			img.Env[k] = ex(v)
		}
		t.Images[name] = img
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// repository strips the tag and digest of an image reference: "ghcr.io/a/b:1.0@sha256:…" → "ghcr.io/a/b".
func repository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		ref = ref[:i]
	}
	return ref
}

// Lookup finds the image of a reference, or says why not.
func (t *ImageTable) Lookup(ref string) (Image, error) {
	img, ok := t.Images[repository(ref)]
	if !ok {
		return Image{}, fmt.Errorf("image %q is not in the process-node image table (%s): this node runs only the project's own images", ref, t.File)
	}
	return img, nil
}
