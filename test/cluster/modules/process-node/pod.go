package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/log"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podRuntime is one pod on a process node: its address, folder, volumes and containers.
type podRuntime struct {
	rt   *processRuntime
	prov *nodeProvider
	ip   string
	dir  string
	vols *volumeSet

	mu          sync.Mutex
	pod         *corev1.Pod
	startTime   metav1.Time
	inits       []*containerRuntime
	containers  []*containerRuntime
	initialized bool
	terminating bool
	failed      bool // an init container failed for good
	podMessage  string

	// stopCh closes when the pod is being deleted or the node stops.
	stopCh   chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	updates  chan struct{}
}

func newPodRuntime(prov *nodeProvider, pod *corev1.Pod) (*podRuntime, error) {
	ip, err := prov.rt.ipam.allocate(string(pod.UID))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(prov.rt.cfg.StateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		prov.rt.ipam.release(string(pod.UID))
		return nil, err
	}
	p := &podRuntime{
		rt: prov.rt, prov: prov, ip: ip, dir: dir,
		pod:       pod.DeepCopy(),
		startTime: metav1.Now(),
		stopCh:    make(chan struct{}),
		done:      make(chan struct{}),
		updates:   make(chan struct{}, 1),
	}
	p.vols = newVolumeSet(p)
	for i := range pod.Spec.InitContainers {
		p.inits = append(p.inits, newContainerRuntime(p, pod.Spec.InitContainers[i], true))
	}
	for i := range pod.Spec.Containers {
		p.containers = append(p.containers, newContainerRuntime(p, pod.Spec.Containers[i], false))
	}
	go p.notifier()
	p.changed()
	return p, nil
}

func (p *podRuntime) name() string { return p.pod.Namespace + "/" + p.pod.Name }

// changed asks the notifier to push the pod's status (coalesced: the latest status wins).
func (p *podRuntime) changed() {
	select {
	case p.updates <- struct{}{}:
	default:
	}
}

func (p *podRuntime) notifier() {
	for {
		select {
		case <-p.updates:
			p.prov.send(p.snapshot())
		case <-p.done:
			// The final status, after every container has ended.
			p.prov.send(p.snapshot())
			return
		}
	}
}

func (p *podRuntime) update(pod *corev1.Pod) {
	p.mu.Lock()
	p.pod = pod.DeepCopy()
	p.mu.Unlock()
	p.vols.refresh()
}

func (p *podRuntime) currentPod() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pod.DeepCopy()
}

func (p *podRuntime) event(eventType, reason, format string, args ...any) {
	p.rt.recorder.Eventf(p.currentPod(), eventType, reason, format, args...)
}

func (p *podRuntime) stopping() bool {
	select {
	case <-p.stopCh:
		return true
	default:
		return false
	}
}

// sleep waits d or until the pod is stopped; false when stopped.
func (p *podRuntime) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stopCh:
		return false
	}
}

// run is the pod's lifecycle: volumes, init containers in order, then the containers side by side.
func (p *podRuntime) run() {
	defer close(p.done)
	if p.prov.spec.Note != "" {
		p.event(corev1.EventTypeNormal, "ProcessNode", "%s", p.prov.spec.Note)
	}
	for {
		err := p.vols.setup()
		if err == nil {
			break
		}
		p.mu.Lock()
		p.podMessage = err.Error()
		for _, c := range append(append([]*containerRuntime{}, p.inits...), p.containers...) {
			c.setWaiting("CreateContainerConfigError", err.Error())
		}
		p.mu.Unlock()
		p.event(corev1.EventTypeWarning, "FailedMount", "%v", err)
		p.changed()
		if !p.sleep(2 * time.Second) {
			return
		}
	}
	p.mu.Lock()
	p.podMessage = ""
	p.mu.Unlock()
	go p.vols.syncLoop()

	for _, c := range p.inits {
		for {
			if p.stopping() {
				return
			}
			if c.imageErr != nil {
				c.blockOnImage()
				return
			}
			code := c.runOnce()
			if code == 0 {
				break
			}
			if p.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				p.mu.Lock()
				p.failed = true
				p.mu.Unlock()
				p.changed()
				return
			}
			if !c.backOff() {
				return
			}
		}
	}
	p.mu.Lock()
	p.initialized = true
	p.mu.Unlock()
	p.changed()

	var wg sync.WaitGroup
	for _, c := range p.containers {
		wg.Add(1)
		go func(c *containerRuntime) {
			defer wg.Done()
			c.supervise()
		}(c)
	}
	wg.Wait()
}

// terminate stops the pod: preStop hooks, SIGTERM, SIGKILL after grace (all containers at once).
func (p *podRuntime) terminate(grace time.Duration, runHooks bool) {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.terminating = true
		p.mu.Unlock()
		close(p.stopCh)
		deadline := time.Now().Add(grace)
		var wg sync.WaitGroup
		for _, c := range append(append([]*containerRuntime{}, p.inits...), p.containers...) {
			wg.Add(1)
			go func(c *containerRuntime) {
				defer wg.Done()
				c.stop(deadline, runHooks, "Stopping container %s")
			}(c)
		}
		wg.Wait()
		p.changed()
	})
}

// cleanup releases what the pod held once every container has ended.
func (p *podRuntime) cleanup() {
	p.vols.teardown()
	p.rt.ipam.release(string(p.pod.UID))
	for _, c := range append(append([]*containerRuntime{}, p.inits...), p.containers...) {
		p.rt.cgroups.remove(c.cgroupPath())
	}
	p.rt.cgroups.remove(p.cgroupPath())
	// Logs are kept until the pod's folder goes (kubectl logs of a deleted pod is not possible anyway).
	if err := os.RemoveAll(p.dir); err != nil {
		log.L.WithError(err).Warnf("removing %s", p.dir)
	}
}

func (p *podRuntime) cgroupPath() string { return string(p.pod.UID) }

// snapshot is the pod as the provider sees it, with a status computed from the containers.
func (p *podRuntime) snapshot() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod := p.pod.DeepCopy()
	st := &pod.Status
	st.HostIP = p.prov.spec.Address
	st.HostIPs = []corev1.HostIP{{IP: p.prov.spec.Address}}
	st.PodIP = p.ip
	st.PodIPs = []corev1.PodIP{{IP: p.ip}}
	st.StartTime = &p.startTime
	st.InitContainerStatuses = nil
	for _, c := range p.inits {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.status())
	}
	st.ContainerStatuses = nil
	allReady := true
	running, waiting, succeeded, failed := 0, 0, 0, 0
	for _, c := range p.containers {
		cs := c.status()
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil && !c.willRestart(cs.State.Terminated.ExitCode):
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		default:
			waiting++
		}
	}
	n := len(p.containers)
	switch {
	case p.failed:
		st.Phase = corev1.PodFailed
	case !p.initialized && !p.terminating:
		st.Phase = corev1.PodPending
	case succeeded+failed == n && n > 0:
		if failed > 0 {
			st.Phase = corev1.PodFailed
		} else {
			st.Phase = corev1.PodSucceeded
		}
	case p.terminating && running == 0:
		// Deleted before it could finish: a terminal phase lets the pod object go.
		if failed > 0 || waiting > 0 || !p.initialized {
			st.Phase = corev1.PodFailed
		} else {
			st.Phase = corev1.PodSucceeded
		}
	case running > 0 || (waiting > 0 && anyStarted(p.containers)):
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	st.Message = p.podMessage
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
			reason = ""
		}
		c := corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: now}
		for _, old := range pod.Status.Conditions {
			if old.Type == t && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	ready := allReady && p.initialized && !p.terminating && st.Phase == corev1.PodRunning
	terminal := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	reason := "ContainersNotReady"
	if terminal {
		reason = "PodCompleted"
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, !terminal, ""),
		cond(corev1.PodInitialized, p.initialized || terminal, "ContainersNotInitialized"),
		cond(corev1.ContainersReady, ready, reason),
		cond(corev1.PodReady, ready, reason),
		cond(corev1.PodScheduled, true, ""),
	}
	return pod
}

func anyStarted(cs []*containerRuntime) bool {
	for _, c := range cs {
		if c.restartCount > 0 || c.lastTerminated != nil {
			return true
		}
	}
	return false
}

// containerNamed finds a container (or init container) by name.
func (p *podRuntime) containerNamed(name string) (*containerRuntime, error) {
	for _, c := range append(append([]*containerRuntime{}, p.inits...), p.containers...) {
		if c.spec.Name == name || (name == "" && !c.init && len(p.containers) == 1) {
			return c, nil
		}
	}
	names := []string{}
	for _, c := range p.containers {
		names = append(names, c.spec.Name)
	}
	return nil, fmt.Errorf("container %q is not in pod %s (containers: %s)", name, p.name(), strings.Join(names, ", "))
}

func (p *podRuntime) logs(ctx context.Context, container string, opts logOptions) (readCloser, error) {
	c, err := p.containerNamed(container)
	if err != nil {
		return nil, err
	}
	return c.readLogs(ctx, opts)
}
