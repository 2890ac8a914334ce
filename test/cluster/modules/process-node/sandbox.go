package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// sandboxSpec is what the sandbox needs to become a container: written by the provider (0600, in the
// container's folder), read and removed by `process-node sandbox`.
type sandboxSpec struct {
	Root       string      `json:"root"`
	Upper      string      `json:"upper"`
	Work       string      `json:"work"`
	Layers     []Layer     `json:"layers"`
	Mounts     []mountSpec `json:"mounts"`
	Dirs       []string    `json:"dirs"`
	ReadOnly   bool        `json:"readOnlyRoot"`
	WorkingDir string      `json:"workingDir"`
	Hostname   string      `json:"hostname"`
	HostsFile  string      `json:"hostsFile"`
	UID        uint32      `json:"uid"`
	GID        uint32      `json:"gid"`
	Groups     []uint32    `json:"groups"`
	NoNewPrivs bool        `json:"noNewPrivs"`
	Argv       []string    `json:"argv"`
	Env        []string    `json:"env"`
	Cgroups    []string    `json:"cgroups"`
	ErrorFile  string      `json:"errorFile"`
}

type mountSpec struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
	File     bool   `json:"file"`
}

// shimInContainer is where the bind shim (LD_PRELOAD) is mounted in every container.
const shimInContainer = "/.process-node/bindshim.so"

// userOf is the uid:gid a container runs as: its securityContext, the pod's, then the image's USER.
func userOf(pod *corev1.Pod, c *corev1.Container, img Image) (uint32, uint32, error) {
	var uid, gid int64
	if img.User != "" {
		parts := strings.SplitN(img.User, ":", 2)
		u, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("image user %q is not numeric", img.User)
		}
		uid = u
		if len(parts) == 2 {
			if gid, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
				return 0, 0, fmt.Errorf("image user %q is not numeric", img.User)
			}
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	nonRoot := false
	if psc := pod.Spec.SecurityContext; psc != nil && psc.RunAsNonRoot != nil {
		nonRoot = *psc.RunAsNonRoot
	}
	if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		nonRoot = *sc.RunAsNonRoot
	}
	if nonRoot && uid == 0 {
		return 0, 0, fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Name, c.Name)
	}
	return uint32(uid), uint32(gid), nil
}

// sandboxSpec builds the spec of the container's next run.
func (c *containerRuntime) sandboxSpec() (*sandboxSpec, error) {
	p := c.pod
	pod := p.currentPod()
	uid, gid, err := userOf(pod, &c.spec, c.image)
	if err != nil {
		return nil, err
	}
	env, envMap, err := containerEnv(pod, &c.spec, c.image, p.ip, p.prov.spec.Address, p.rt.cfg.APIServerHost, p.rt.cfg.APIServerPort, p, p.nodeCapacity())
	if err != nil {
		return nil, err
	}
	env = append(env, "WHISPEROPS_POD_IP="+p.ip, "LD_PRELOAD="+shimInContainer)
	argv := commandLine(&c.spec, c.image, envMap)
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command: the container sets none and image %s has no entrypoint", c.spec.Image)
	}
	groups := []uint32{}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.FSGroup != nil {
			groups = append(groups, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			groups = append(groups, uint32(g))
		}
	}
	spec := &sandboxSpec{
		Root:  filepath.Join(c.dir(), "rootfs"),
		Upper: filepath.Join(c.dir(), "upper"),
		Work:  filepath.Join(c.dir(), "work"),
		// The bind shim travels into every container like a layer of the image.
		Layers:     append(append([]Layer{}, c.image.Layers...), Layer{From: p.rt.cfg.BindShim, To: shimInContainer}),
		Dirs:       c.image.Dirs,
		WorkingDir: c.spec.WorkingDir,
		Hostname:   pod.Name,
		HostsFile:  filepath.Join(p.dir, "hosts"),
		UID:        uid,
		GID:        gid,
		Groups:     groups,
		Argv:       argv,
		Env:        env,
		ErrorFile:  filepath.Join(c.dir(), "sandbox-error"),
	}
	if len(spec.Hostname) > 63 {
		spec.Hostname = spec.Hostname[:63]
	}
	if spec.WorkingDir == "" {
		spec.WorkingDir = c.image.WorkingDir
	}
	if spec.WorkingDir == "" {
		spec.WorkingDir = "/"
	}
	if sc := c.spec.SecurityContext; sc != nil {
		spec.ReadOnly = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		spec.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	}
	if err := os.WriteFile(spec.HostsFile, []byte(fmt.Sprintf("# Kubernetes-managed hosts file (process node).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", p.ip, pod.Name)), 0o644); err != nil {
		return nil, err
	}
	for _, vm := range c.spec.VolumeMounts {
		src, ok := p.vols.path(vm.Name)
		if !ok {
			return nil, fmt.Errorf("volume %q of mount %s is not set up", vm.Name, vm.MountPath)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expandVars(vm.SubPathExpr, envMap)
		}
		if sub != "" {
			clean := filepath.Clean("/" + sub)
			if clean != "/"+strings.TrimPrefix(filepath.Clean(sub), "/") || strings.Contains(sub, "..") {
				return nil, fmt.Errorf("subPath %q must not leave its volume", sub)
			}
			src = filepath.Join(src, clean)
			if _, err := os.Stat(src); os.IsNotExist(err) {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, err
				}
			}
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", vm.MountPath, err)
		}
		spec.Mounts = append(spec.Mounts, mountSpec{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly, File: !st.IsDir()})
	}
	tmp := c.spec.TerminationMessagePath
	if tmp == "" {
		tmp = corev1.TerminationMessagePathDefault
	}
	spec.Mounts = append(spec.Mounts, mountSpec{Source: filepath.Join(c.dir(), "termination-log"), Target: tmp, File: true})
	if procs := p.rt.cgroups.procsFile(c.cgroupPath()); procs != "" {
		spec.Cgroups = []string{procs}
	}
	return spec, nil
}

// runSandbox turns this process into the container: it runs in a new mount and UTS namespace (the
// provider started it so), mounts an overlay of the host's root as the container's root, the
// image's layers read-only, a fresh /dev, the pod's volumes and termination-log file, then
// chroots, drops to the container's user and execs the container's command.
func runSandbox(specFile string) {
	var spec sandboxSpec
	data, err := os.ReadFile(specFile)
	if err == nil {
		_ = os.Remove(specFile)
		err = json.Unmarshal(data, &spec)
	}
	fail := func(err error) {
		msg := fmt.Sprintf("process-node sandbox: %v", err)
		if spec.ErrorFile != "" {
			_ = os.WriteFile(spec.ErrorFile, []byte(msg), 0o644)
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(128)
	}
	if err != nil {
		fail(err)
	}
	if err := setupSandbox(&spec); err != nil {
		fail(err)
	}
	path, err := lookPath(spec.Argv[0], spec.Env, spec.WorkingDir)
	if err != nil {
		fail(err)
	}
	// fd 3 is the provider's exec pipe: closed by the exec itself, so the provider sees EOF exactly then.
	unix.CloseOnExec(3)
	if err := syscall.Exec(path, spec.Argv, spec.Env); err != nil {
		fail(fmt.Errorf("exec %s: %w", spec.Argv[0], err))
	}
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", source, target, err)
	}
	return nil
}

func bindReadOnly(target string) error {
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, "")
}

// ensure makes a mount point at path in the container's root: a directory, or an empty file.
func ensure(path string, file bool) error {
	if file {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return os.WriteFile(path, nil, 0o644)
		}
		return nil
	}
	return os.MkdirAll(path, 0o755)
}

// traversable gives o+x to every directory from / down to path inside the container's root view
// (the overlay copies the directory up: the host's own folders are untouched), so an unprivileged
// container user can reach the image's layers wherever they live on the host.
func traversable(root, path string) {
	parts := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	cur := root
	for _, part := range parts[:max(len(parts)-1, 0)] {
		cur = filepath.Join(cur, part)
		// Lstat: a symbolic link could point out of the container's root, onto the host's own folders.
		st, err := os.Lstat(cur)
		if err != nil || !st.IsDir() {
			return
		}
		if st.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(cur, st.Mode().Perm()|0o001)
		}
	}
}

// inRoot resolves path inside root the way the container will see it: symbolic links (e.g. Debian's
// /var/run -> /run) are followed within root, never out to the host's own directories.
func inRoot(root, path string) (string, error) {
	parts := strings.Split(strings.Trim(filepath.Clean("/"+path), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			cur = next // not a link (or not there yet)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many symbolic links in %s", path)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
	}
	return filepath.Join(root, cur), nil
}

func setupSandbox(s *sandboxSpec) error {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	// A fresh writable layer for every run of the container.
	_ = os.RemoveAll(s.Upper)
	_ = os.RemoveAll(s.Work)
	for _, d := range []string{s.Root, s.Upper, s.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := mount("overlay", s.Root, "overlay", 0, fmt.Sprintf("lowerdir=/,upperdir=%s,workdir=%s", s.Upper, s.Work)); err != nil {
		return err
	}
	var resolveErr error
	r := func(p string) string {
		full, err := inRoot(s.Root, p)
		if err != nil && resolveErr == nil {
			resolveErr = err
		}
		return full
	}
	for _, d := range []string{"/proc", "/sys"} {
		if err := mount(d, r(d), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	}
	// /dev: a tmpfs with the usual device nodes bound from the host, its own /dev/shm.
	if err := mount("tmpfs", r("/dev"), "tmpfs", unix.MS_NOSUID, "mode=755"); err != nil {
		return err
	}
	for _, dev := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := ensure(r("/dev/"+dev), true); err != nil {
			return err
		}
		if err := mount("/dev/"+dev, r("/dev/"+dev), "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm"} {
		if err := os.MkdirAll(r(d), 0o755); err != nil {
			return err
		}
	}
	if err := mount("/dev/pts", r("/dev/pts"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := mount("shm", r("/dev/shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=67108864"); err != nil {
		return err
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		_ = os.Symlink(target, r("/dev/"+name))
	}
	// The image: its layers read-only at the image's paths, reachable by the container's user.
	for _, l := range s.Layers {
		st, err := os.Stat(l.From)
		if err != nil {
			return fmt.Errorf("image layer %s: %w", l.From, err)
		}
		if err := ensure(r(l.To), !st.IsDir()); err != nil {
			return err
		}
		if err := mount(l.From, r(l.To), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := bindReadOnly(r(l.To)); err != nil {
			return err
		}
		traversable(s.Root, l.To)
	}
	for _, d := range s.Dirs {
		if err := os.MkdirAll(r(d), 0o755); err != nil {
			return err
		}
		_ = os.Chown(r(d), int(s.UID), int(s.GID))
	}
	if err := os.MkdirAll(r(s.WorkingDir), 0o755); err != nil {
		return err
	}
	// The pod's volumes, then its hosts file and the termination-log file.
	for _, m := range s.Mounts {
		if err := ensure(r(m.Target), m.File); err != nil {
			return err
		}
		if err := mount(m.Source, r(m.Target), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if m.ReadOnly {
			if err := bindReadOnly(r(m.Target)); err != nil {
				return err
			}
		}
	}
	if err := ensure(r("/etc/hosts"), true); err != nil {
		return err
	}
	if err := mount(s.HostsFile, r("/etc/hosts"), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if resolveErr != nil {
		return resolveErr
	}
	if s.ReadOnly {
		if err := mount("", s.Root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return err
		}
	}
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	for _, f := range s.Cgroups {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", f, err)
		}
	}
	if err := unix.Chdir(s.Root); err != nil {
		return err
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir(s.WorkingDir); err != nil {
		return fmt.Errorf("workingDir %s: %w", s.WorkingDir, err)
	}
	groups := make([]int, 0, len(s.Groups))
	for _, g := range s.Groups {
		groups = append(groups, int(g))
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(int(s.GID)); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(int(s.UID)); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if s.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	// A change of user clears the parent-death signal: set it again.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return err
	}
	return nil
}

// lookPath resolves the command in the container's PATH (after chroot).
func lookPath(file string, env []string, wd string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := defaultPath
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			path = e[len("PATH="):]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = wd
		}
		full := filepath.Join(dir, file)
		if st, err := os.Stat(full); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return full, nil
		}
	}
	return "", fmt.Errorf("executable file %q not found in $PATH (%s)", file, path)
}
