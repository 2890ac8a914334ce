package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpandVars(t *testing.T) {
	env := map[string]string{"A": "x", "B": "y y"}
	cases := map[string]string{
		"$(A)":          "x",
		"a-$(A)-$(B)":   "a-x-y y",
		"$$(A)":         "$(A)",
		"$(MISSING)":    "$(MISSING)",
		"$(A":           "$(A",
		"plain":         "plain",
		"cost: $5":      "cost: $5",
		"$(A)$(A)$$":    "xx$",
		"trailing $":    "trailing $",
		"$(A)/$(B)/end": "x/y y/end",
	}
	for in, want := range cases {
		if got := expandVars(in, env); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	img := Image{Entrypoint: []string{"node", "main.js"}, Cmd: []string{"--serve"}}
	env := map[string]string{"PORT": "8000"}
	cases := []struct {
		name    string
		command []string
		args    []string
		want    []string
	}{
		{"image defaults", nil, nil, []string{"node", "main.js", "--serve"}},
		{"args replace cmd", nil, []string{"--port=$(PORT)"}, []string{"node", "main.js", "--port=8000"}},
		{"command replaces entrypoint and cmd", []string{"sh", "-c"}, nil, []string{"sh", "-c"}},
		{"command and args", []string{"echo", "$(PORT)"}, []string{"$(PORT)", "$$(PORT)"}, []string{"echo", "8000", "8000", "$(PORT)"}},
	}
	for _, c := range cases {
		got := commandLine(&corev1.Container{Command: c.command, Args: c.args}, img, env)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// The image's own entrypoint is never expanded.
	got := commandLine(&corev1.Container{}, Image{Entrypoint: []string{"echo", "$(PORT)"}}, env)
	if !reflect.DeepEqual(got, []string{"echo", "$(PORT)"}) {
		t.Errorf("image entrypoint expanded: %q", got)
	}
}

func TestRepository(t *testing.T) {
	cases := map[string]string{
		"ghcr.io/whisperops/edge-agent:0.1.0": "ghcr.io/whisperops/edge-agent",
		"ghcr.io/whisperops/edge-agent":       "ghcr.io/whisperops/edge-agent",
		"localhost:5000/agent:1":              "localhost:5000/agent",
		"localhost:5000/agent":                "localhost:5000/agent",
		"ghcr.io/a/b@sha256:abc":              "ghcr.io/a/b",
		"ghcr.io/a/b:1.0@sha256:abc":          "ghcr.io/a/b",
	}
	for in, want := range cases {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
	table := &ImageTable{File: "images.yaml", Images: map[string]Image{"ghcr.io/whisperops/edge-agent": {}}}
	if _, err := table.Lookup("ghcr.io/whisperops/edge-agent:9"); err != nil {
		t.Errorf("lookup by tag: %v", err)
	}
	if _, err := table.Lookup("docker.io/library/nginx:1"); err == nil || !strings.Contains(err.Error(), "images.yaml") {
		t.Errorf("unknown image: error %v does not name the table", err)
	}
}

func TestFieldValueAndFormatMap(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"b": "2", "a": "1\"q"}, Annotations: map[string]string{"k": "v"}},
		Spec: corev1.PodSpec{NodeName: "n", ServiceAccountName: "sa"}}
	cases := map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u1", "spec.nodeName": "n",
		"spec.serviceAccountName": "sa", "status.podIP": "127.9.1.1", "status.hostIP": "127.9.0.1",
		"metadata.labels['b']": "2", "metadata.annotations['k']": "v", "metadata.labels['none']": "",
		"metadata.labels": "a=\"1\\\"q\"\nb=\"2\"",
	}
	for path, want := range cases {
		got, err := fieldValue(pod, "127.9.1.1", "127.9.0.1", path)
		if err != nil || got != want {
			t.Errorf("fieldValue(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := fieldValue(pod, "", "", "spec.bogus"); err == nil {
		t.Error("unsupported field path accepted")
	}
}

func TestResourceValue(t *testing.T) {
	c := &corev1.Container{Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
	}}
	node := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Gi")}
	cases := []struct {
		res, divisor, want string
	}{
		{"limits.cpu", "", "1"}, // rounded up to whole cores
		{"limits.cpu", "1m", "500"},
		{"requests.cpu", "1m", "250"},
		{"limits.memory", "1Mi", "64"},
		{"requests.memory", "1Gi", "32"}, // unset: the node's allocatable
	}
	for _, tc := range cases {
		ref := &corev1.ResourceFieldSelector{Resource: tc.res}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := resourceValue(c, ref, node)
		if err != nil || got != tc.want {
			t.Errorf("%s/%s = %q, %v; want %q", tc.res, tc.divisor, got, err, tc.want)
		}
	}
}

type fakeResolver struct{}

func (fakeResolver) configMapKey(_, name, key string) (string, bool, error) {
	if name == "cm" && key == "mode" {
		return "fast", true, nil
	}
	return "", false, nil
}
func (fakeResolver) secretKey(_, name, key string) (string, bool, error) {
	if name == "s" && key == "token" {
		return "hunter2", true, nil
	}
	return "", false, nil
}
func (fakeResolver) configMapData(_, name string) (map[string]string, bool, error) {
	if name == "cm" {
		return map[string]string{"mode": "fast", "level": "3"}, true, nil
	}
	return nil, false, nil
}
func (fakeResolver) secretData(string, string) (map[string]string, bool, error) {
	return nil, false, nil
}

func TestContainerEnv(t *testing.T) {
	optional := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent-1", Namespace: "edge"}}
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
		Env: []corev1.EnvVar{
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "URL", Value: "http://$(POD_IP):8000/$(CFG_mode)"},
			{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "mode"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "token"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "x", Optional: &optional}}},
			{Name: "HOME", Value: "/data"},
		},
	}
	img := Image{Env: map[string]string{"NODE_ENV": "production", "HOME": "/root"}}
	list, env, err := containerEnv(pod, c, img, "127.9.1.5", "127.9.0.1", "127.0.0.1", 6443, fakeResolver{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"POD_IP": "127.9.1.5", "URL": "http://127.9.1.5:8000/fast", "MODE": "fast", "TOKEN": "hunter2",
		"CFG_mode": "fast", "CFG_level": "3", "NODE_ENV": "production", "HOME": "/data", "HOSTNAME": "agent-1",
		"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["OPT"]; ok {
		t.Error("optional missing secret key was set")
	}
	if len(list) != len(env) {
		t.Errorf("list has %d entries, map %d (duplicates?)", len(list), len(env))
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "BAD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "nope"}}})
	if _, _, err := containerEnv(pod, c, img, "", "", "127.0.0.1", 6443, fakeResolver{}, nil); err == nil || !strings.Contains(err.Error(), "couldn't find key nope") {
		t.Errorf("missing secret key: %v", err)
	}
}

func TestUserOf(t *testing.T) {
	yes := true
	u := func(i int64) *int64 { return &i }
	img := Image{User: "1000:1000"}
	pod := &corev1.Pod{}
	if uid, gid, err := userOf(pod, &corev1.Container{}, img); err != nil || uid != 1000 || gid != 1000 {
		t.Errorf("image user: %d:%d %v", uid, gid, err)
	}
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: u(65532), RunAsGroup: u(65532), RunAsNonRoot: &yes}
	if uid, _, err := userOf(pod, &corev1.Container{}, img); err != nil || uid != 65532 {
		t.Errorf("pod user: %d %v", uid, err)
	}
	c := &corev1.Container{Name: "x", SecurityContext: &corev1.SecurityContext{RunAsUser: u(0)}}
	if _, _, err := userOf(pod, c, img); err == nil || !strings.Contains(err.Error(), "runAsNonRoot") {
		t.Errorf("root with runAsNonRoot accepted: %v", err)
	}
}

func TestInRoot(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	must(os.Symlink("/run", filepath.Join(root, "var", "run")))   // absolute link, as on Debian
	must(os.Symlink("../run", filepath.Join(root, "var", "rel"))) // relative link
	must(os.Symlink("/../../../etc", filepath.Join(root, "escape")))
	cases := map[string]string{
		"/var/run/secrets/token": "/run/secrets/token",
		"/var/rel/x":             "/run/x",
		"/escape/passwd":         "/etc/passwd", // stays inside root
		"/a/../b":                "/b",
		"/":                      "/",
	}
	for in, want := range cases {
		got, err := inRoot(root, in)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("inRoot(%q) = %q, %v; want %q", in, got, err, filepath.Join(root, want))
		}
	}
	must(os.Symlink("loop", filepath.Join(root, "loop")))
	if _, err := inRoot(root, "/loop/x"); err == nil {
		t.Error("symlink loop not detected")
	}
}

func TestAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	owner := [2]int{os.Getuid(), os.Getgid()}
	files := map[string]fileData{"a.yaml": {data: []byte("one"), mode: 0o644}, "sub/b": {data: []byte("two"), mode: 0o600}}
	changed, err := atomicWrite(dir, files, owner)
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if read("a.yaml") != "one" || read("sub/b") != "two" {
		t.Fatalf("content: %q %q", read("a.yaml"), read("sub/b"))
	}
	if target, _ := os.Readlink(filepath.Join(dir, "a.yaml")); target != "..data/a.yaml" {
		t.Errorf("a.yaml links to %q", target)
	}
	first, _ := os.Readlink(filepath.Join(dir, "..data"))
	if changed, err := atomicWrite(dir, files, owner); err != nil || changed {
		t.Errorf("unchanged content rewritten: %v %v", changed, err)
	}
	// Update: a.yaml changes, sub/ goes, c appears; the old timestamped folder is removed.
	changed, err = atomicWrite(dir, map[string]fileData{"a.yaml": {data: []byte("uno"), mode: 0o644}, "c": {data: nil, mode: 0o644}}, owner)
	if err != nil || !changed {
		t.Fatalf("update: %v %v", changed, err)
	}
	second, _ := os.Readlink(filepath.Join(dir, "..data"))
	if second == first {
		t.Error("..data was not swapped")
	}
	if read("a.yaml") != "uno" || read("c") != "" {
		t.Errorf("after update: %q %q", read("a.yaml"), read("c"))
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Error("removed top-level name still there")
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Error("old data folder kept")
	}
	if _, err := atomicWrite(dir, map[string]fileData{"../x": {}}, owner); err == nil {
		t.Error("path escaping the volume accepted")
	}
}

func TestIPAM(t *testing.T) {
	a, err := ipamFor("127.77")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := a.allocate("u1")
	second, _ := a.allocate("u2")
	again, _ := a.allocate("u1")
	if first != "127.77.1.1" || second != "127.77.1.2" || again != first {
		t.Errorf("got %s %s %s", first, second, again)
	}
	a.release("u1")
	third, _ := a.allocate("u3")
	if third != "127.77.1.1" {
		t.Errorf("freed address not reused: %s", third)
	}
	if a.address(253) != "127.77.1.254" || a.address(254) != "127.77.2.1" {
		t.Errorf("block boundary: %s %s", a.address(253), a.address(254))
	}
	if _, err := ipamFor("10.0"); err == nil {
		t.Error("non-loopback prefix accepted")
	}
}

func TestParseLogLine(t *testing.T) {
	l, ok := parseLogLine("2026-12-02T08:00:00.123456789Z stdout F hello world")
	if !ok || l.text != "hello world" || !l.full {
		t.Errorf("got %+v %v", l, ok)
	}
	p, ok := parseLogLine("2026-12-02T08:00:00Z stderr P part")
	if !ok || p.full || formatLine(p, false) != "part" {
		t.Errorf("partial: %+v %v", p, ok)
	}
	if formatLine(l, true) != "2026-12-02T08:00:00.123456789Z hello world\n" {
		t.Errorf("timestamps: %q", formatLine(l, true))
	}
	if _, ok := parseLogLine("garbage"); ok {
		t.Error("garbage parsed")
	}
}

// TestBindShim loads the shim into a real server (python3) and checks that a wildcard listener ends
// up on the pod's address only, and an explicit address is left alone.
func TestBindShim(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	so := filepath.Join(t.TempDir(), "bindshim.so")
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", so, "bindshim/bindshim.c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	script := `import socket
for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"), (socket.AF_INET, "127.0.0.1")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    print(s.getsockname()[0])
`
	cmd := exec.Command("python3", "-c", script)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+so, "WHISPEROPS_POD_IP=127.77.1.9")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	want := []string{"127.77.1.9", "::ffff:127.77.1.9", "127.0.0.1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bound to %q, want %q", got, want)
	}
}
