package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/log"
	"golang.org/x/sys/unix"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fileData is one file of a projected volume.
type fileData struct {
	data []byte
	mode os.FileMode
}

// volumeSet holds a pod's volumes under <pod dir>/volumes/<name>.
type volumeSet struct {
	pod *podRuntime

	mu      sync.Mutex
	paths   map[string]string // volume name → host path
	tokens  map[string]cachedToken
	tmpfs   []string
	stopped bool
}

type cachedToken struct {
	token   string
	refresh time.Time
}

func newVolumeSet(p *podRuntime) *volumeSet {
	return &volumeSet{pod: p, paths: map[string]string{}, tokens: map[string]cachedToken{}}
}

func (v *volumeSet) root() string { return filepath.Join(v.pod.dir, "volumes") }

// setup creates every volume of the pod; an error (a missing ConfigMap, an unbound claim) is
// reported and retried by the caller.
func (v *volumeSet) setup() error {
	pod := v.pod.currentPod()
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		v.mu.Lock()
		_, done := v.paths[vol.Name]
		v.mu.Unlock()
		if done {
			continue
		}
		path, err := v.create(pod, vol)
		if err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", vol.Name, err)
		}
		v.mu.Lock()
		v.paths[vol.Name] = path
		v.mu.Unlock()
	}
	return nil
}

func (v *volumeSet) create(pod *corev1.Pod, vol *corev1.Volume) (string, error) {
	dir := filepath.Join(v.root(), vol.Name)
	switch {
	case vol.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return "", err
		}
		if vol.EmptyDir.Medium == corev1.StorageMediumMemory {
			opts := "mode=1777"
			if vol.EmptyDir.SizeLimit != nil && !vol.EmptyDir.SizeLimit.IsZero() {
				opts += fmt.Sprintf(",size=%d", vol.EmptyDir.SizeLimit.Value())
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return "", fmt.Errorf("tmpfs for emptyDir: %w", err)
			}
			v.mu.Lock()
			v.tmpfs = append(v.tmpfs, dir)
			v.mu.Unlock()
		}
		return dir, nil
	case vol.HostPath != nil:
		return hostPathSource(vol.HostPath)
	case vol.PersistentVolumeClaim != nil:
		return v.claimPath(pod.Namespace, vol.PersistentVolumeClaim.ClaimName)
	case vol.ConfigMap != nil, vol.Secret != nil, vol.DownwardAPI != nil, vol.Projected != nil:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		files, err := v.projection(pod, vol)
		if err != nil {
			return "", err
		}
		if _, err := atomicWrite(dir, files, v.owner(pod)); err != nil {
			return "", err
		}
		return dir, nil
	}
	return "", fmt.Errorf("this volume type is not supported on process nodes (supported: emptyDir, hostPath, persistentVolumeClaim, configMap, secret, downwardAPI, projected)")
}

func hostPathSource(hp *corev1.HostPathVolumeSource) (string, error) {
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	st, err := os.Stat(hp.Path)
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return hp.Path, os.MkdirAll(hp.Path, 0o755)
		}
	case corev1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return "", err
			}
			return hp.Path, os.WriteFile(hp.Path, nil, 0o644)
		}
	case corev1.HostPathDirectory:
		if err != nil || !st.IsDir() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
	case corev1.HostPathFile:
		if err != nil || !st.Mode().IsRegular() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
	case corev1.HostPathSocket:
		if err != nil || st.Mode()&os.ModeSocket == 0 {
			return "", fmt.Errorf("hostPath type check failed: %s is not a socket", hp.Path)
		}
	}
	return hp.Path, nil
}

// claimPath follows a bound claim to its hostPath or local PersistentVolume.
func (v *volumeSet) claimPath(namespace, claim string) (string, error) {
	ctx, cancel := context.WithTimeout(v.pod.rt.ctx, 10*time.Second)
	defer cancel()
	pvc, err := v.pod.rt.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolumeclaim %q: %w", claim, err)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound yet", claim)
	}
	pv, err := v.pod.rt.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	switch {
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path, os.MkdirAll(pv.Spec.HostPath.Path, 0o777)
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q is neither hostPath nor local: process nodes cannot mount it", pv.Name)
}

// owner is who owns projected files: the pod's runAsUser and fsGroup (so restrictive modes still
// let the pod read them), root otherwise.
func (v *volumeSet) owner(pod *corev1.Pod) [2]int {
	uid, gid := 0, 0
	if sc := pod.Spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = int(*sc.RunAsUser)
		}
		if sc.FSGroup != nil {
			gid = int(*sc.FSGroup)
		}
	}
	return [2]int{uid, gid}
}

func mode(defaultMode *int32, itemMode *int32, fallback os.FileMode) os.FileMode {
	if itemMode != nil {
		return os.FileMode(*itemMode)
	}
	if defaultMode != nil {
		return os.FileMode(*defaultMode)
	}
	return fallback
}

func keyItems(data map[string][]byte, items []corev1.KeyToPath, def *int32, what string, out map[string]fileData) error {
	if len(items) == 0 {
		for k, d := range data {
			out[k] = fileData{data: d, mode: mode(def, nil, 0o644)}
		}
		return nil
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("configuration error: key %q not found in %s", it.Key, what)
		}
		out[it.Path] = fileData{data: d, mode: mode(def, it.Mode, 0o644)}
	}
	return nil
}

func (v *volumeSet) configMap(namespace, name string) (map[string][]byte, bool, error) {
	cm, err := v.pod.prov.configMaps.ConfigMaps(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		// The informer may not have it yet: ask the API server.
		cm, err = v.pod.rt.client.CoreV1().ConfigMaps(namespace).Get(v.pod.rt.ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := map[string][]byte{}
	for k, s := range cm.Data {
		out[k] = []byte(s)
	}
	for k, b := range cm.BinaryData {
		out[k] = b
	}
	return out, true, nil
}

func (v *volumeSet) secret(namespace, name string) (map[string][]byte, bool, error) {
	s, err := v.pod.prov.secrets.Secrets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		s, err = v.pod.rt.client.CoreV1().Secrets(namespace).Get(v.pod.rt.ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := map[string][]byte{}
	for k, b := range s.Data {
		out[k] = b
	}
	for k, str := range s.StringData {
		out[k] = []byte(str)
	}
	return out, true, nil
}

func (v *volumeSet) downward(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, def *int32, out map[string]fileData) error {
	for _, it := range items {
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = fieldValue(pod, v.pod.ip, v.pod.prov.spec.Address, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := containerByName(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return fmt.Errorf("downwardAPI: no container %q", it.ResourceFieldRef.ContainerName)
			}
			val, err = resourceValue(c, it.ResourceFieldRef, v.pod.nodeCapacity())
		}
		if err != nil {
			return err
		}
		out[it.Path] = fileData{data: []byte(val), mode: mode(def, it.Mode, 0o644)}
	}
	return nil
}

func containerByName(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name || name == "" {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// keyed adds the keys of a ConfigMap or Secret (read with get) to out, as items select them; a
// missing one is an error unless optional, then it adds nothing.
func (v *volumeSet) keyed(kind, name string, get func(namespace, name string) (map[string][]byte, bool, error), namespace string, optional *bool, items []corev1.KeyToPath, def *int32, out map[string]fileData) error {
	data, ok, err := get(namespace, name)
	if err != nil {
		return err
	}
	if !ok {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("%s %q not found", kind, name)
	}
	return keyItems(data, items, def, kind+" "+name, out)
}

// projection computes the files of a configMap, secret, downwardAPI or projected volume.
func (v *volumeSet) projection(pod *corev1.Pod, vol *corev1.Volume) (map[string]fileData, error) {
	out := map[string]fileData{}
	switch {
	case vol.ConfigMap != nil:
		return out, v.keyed("configmap", vol.ConfigMap.Name, v.configMap, pod.Namespace, vol.ConfigMap.Optional, vol.ConfigMap.Items, vol.ConfigMap.DefaultMode, out)
	case vol.Secret != nil:
		return out, v.keyed("secret", vol.Secret.SecretName, v.secret, pod.Namespace, vol.Secret.Optional, vol.Secret.Items, vol.Secret.DefaultMode, out)
	case vol.DownwardAPI != nil:
		return out, v.downward(pod, vol.DownwardAPI.Items, vol.DownwardAPI.DefaultMode, out)
	}
	def := vol.Projected.DefaultMode
	for i, src := range vol.Projected.Sources {
		switch {
		case src.ConfigMap != nil:
			if err := v.keyed("configmap", src.ConfigMap.Name, v.configMap, pod.Namespace, src.ConfigMap.Optional, src.ConfigMap.Items, def, out); err != nil {
				return nil, err
			}
		case src.Secret != nil:
			if err := v.keyed("secret", src.Secret.Name, v.secret, pod.Namespace, src.Secret.Optional, src.Secret.Items, def, out); err != nil {
				return nil, err
			}
		case src.DownwardAPI != nil:
			if err := v.downward(pod, src.DownwardAPI.Items, def, out); err != nil {
				return nil, err
			}
		case src.ServiceAccountToken != nil:
			tok, err := v.token(pod, fmt.Sprintf("%s/%d", vol.Name, i), src.ServiceAccountToken)
			if err != nil {
				return nil, err
			}
			out[src.ServiceAccountToken.Path] = fileData{data: []byte(tok), mode: mode(def, nil, 0o600)}
		default:
			return nil, fmt.Errorf("projected source %d is not supported on process nodes", i)
		}
	}
	return out, nil
}

// token is a ServiceAccount token for the pod from the TokenRequest API, bound to the pod and
// renewed at 80 % of its life, as the kubelet does.
func (v *volumeSet) token(pod *corev1.Pod, id string, src *corev1.ServiceAccountTokenProjection) (string, error) {
	v.mu.Lock()
	cached, ok := v.tokens[id]
	v.mu.Unlock()
	if ok && time.Now().Before(cached.refresh) {
		return cached.token, nil
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	var audiences []string
	if src.Audience != "" {
		audiences = []string{src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	ctx, cancel := context.WithTimeout(v.pod.rt.ctx, 10*time.Second)
	defer cancel()
	tr, err := v.pod.rt.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{
			Audiences:         audiences,
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s/%s: %w", pod.Namespace, sa, err)
	}
	issued := time.Now()
	life := tr.Status.ExpirationTimestamp.Sub(issued)
	v.mu.Lock()
	v.tokens[id] = cachedToken{token: tr.Status.Token, refresh: issued.Add(life * 8 / 10)}
	v.mu.Unlock()
	return tr.Status.Token, nil
}

// refresh rewrites projected volumes whose content changed (ConfigMap or Secret updates, new labels,
// a renewed token): the kubelet's atomic ..data swap, so readers never see half an update.
func (v *volumeSet) refresh() {
	pod := v.pod.currentPod()
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if vol.ConfigMap == nil && vol.Secret == nil && vol.DownwardAPI == nil && vol.Projected == nil {
			continue
		}
		v.mu.Lock()
		dir, ok := v.paths[vol.Name]
		stopped := v.stopped
		v.mu.Unlock()
		if !ok || stopped {
			continue
		}
		files, err := v.projection(pod, vol)
		if err != nil {
			log.L.WithError(err).Debugf("pod %s: volume %s not refreshed", v.pod.name(), vol.Name)
			continue
		}
		changed, err := atomicWrite(dir, files, v.owner(pod))
		if err != nil {
			log.L.WithError(err).Warnf("pod %s: volume %s", v.pod.name(), vol.Name)
		} else if changed {
			log.L.Debugf("pod %s: volume %s updated", v.pod.name(), vol.Name)
		}
	}
}

func (v *volumeSet) syncLoop() {
	t := time.NewTicker(time.Duration(v.pod.rt.cfg.VolumeSyncSeconds) * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			v.refresh()
		case <-v.pod.done:
			return
		}
	}
}

func (v *volumeSet) path(name string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.paths[name]
	return p, ok
}

func (v *volumeSet) teardown() {
	v.mu.Lock()
	v.stopped = true
	tmpfs := v.tmpfs
	v.tmpfs = nil
	v.mu.Unlock()
	for _, d := range tmpfs {
		_ = unix.Unmount(d, unix.MNT_DETACH)
	}
}

// atomicWrite brings dir to exactly files, as the kubelet's AtomicWriter does: the files live in a
// timestamped folder, "..data" links to it and every top-level name links through "..data"; an
// update writes a new folder and renames a new "..data" link over the old one. Returns whether
// anything changed.
func atomicWrite(dir string, files map[string]fileData, owner [2]int) (bool, error) {
	for p := range files {
		if strings.HasPrefix(p, "..") || strings.HasPrefix(p, "/") || strings.Contains(p, "/../") {
			return false, fmt.Errorf("invalid path %q in projected volume", p)
		}
	}
	dataLink := filepath.Join(dir, "..data")
	old, err := os.Readlink(dataLink)
	if err == nil && sameContent(filepath.Join(dir, old), files) {
		return false, nil
	}
	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range files {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(full, f.data, f.mode.Perm()); err != nil {
			return false, err
		}
		if err := os.Chmod(full, f.mode.Perm()); err != nil {
			return false, err
		}
		if err := os.Lchown(full, owner[0], owner[1]); err != nil {
			return false, err
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return false, err
	}
	// Top-level names: add links for new ones, remove links of names that are gone.
	top := map[string]bool{}
	for p := range files {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return false, err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") {
			if n != "..data" && n != filepath.Base(tsDir) {
				_ = os.RemoveAll(filepath.Join(dir, n))
			}
			continue
		}
		if !top[n] {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	return true, nil
}

func sameContent(dir string, files map[string]fileData) bool {
	count := 0
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f, ok := files[rel]
		if !ok || info.Mode().Perm() != f.mode.Perm() {
			return fmt.Errorf("differs")
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(data, f.data) {
			return fmt.Errorf("differs")
		}
		count++
		return nil
	})
	return err == nil && count == len(files)
}
