package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/log"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	maxTerminationMessage = 4096
	fallbackLogBytes      = 2048
	fallbackLogLines      = 80
	initialBackoff        = 10 * time.Second
	maxBackoff            = 300 * time.Second
	backoffReset          = 10 * time.Minute
)

// containerRuntime is one container of a pod: its process, restarts, probes and log files.
type containerRuntime struct {
	pod      *podRuntime
	spec     corev1.Container
	init     bool
	image    Image
	imageErr error

	// guarded by pod.mu
	waitingReason  string
	waitingMessage string
	runningSince   *metav1.Time
	terminated     *corev1.ContainerStateTerminated
	lastTerminated *corev1.ContainerStateTerminated
	restartCount   int32
	ready          bool
	startedProbe   bool
	pid            int
	backoff        time.Duration

	exitCh   chan struct{} // closed when the current process has exited
	killOnce *sync.Once
}

func newContainerRuntime(p *podRuntime, spec corev1.Container, init bool) *containerRuntime {
	img, err := p.rt.images.Lookup(spec.Image)
	c := &containerRuntime{pod: p, spec: spec, init: init, image: img, imageErr: err, waitingReason: "ContainerCreating"}
	if err != nil {
		c.waitingReason, c.waitingMessage = "ErrImageNeverPull", err.Error()
	}
	return c
}

func (c *containerRuntime) dir() string { return filepath.Join(c.pod.dir, "containers", c.spec.Name) }

func (c *containerRuntime) cgroupPath() string { return string(c.pod.pod.UID) + "/" + c.spec.Name }

func (c *containerRuntime) logPath(restart int32) string {
	return filepath.Join(c.dir(), "logs", fmt.Sprintf("%d.log", restart))
}

// setWaiting must be called with pod.mu held.
func (c *containerRuntime) setWaiting(reason, message string) {
	c.waitingReason, c.waitingMessage = reason, message
}

func (c *containerRuntime) status() corev1.ContainerStatus {
	started := c.runningSince != nil && c.startedProbe
	s := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		ImageID:      "process://" + repository(c.spec.Image),
		RestartCount: c.restartCount,
		Ready:        c.ready && c.runningSince != nil,
		Started:      &started,
	}
	if c.pid != 0 {
		s.ContainerID = fmt.Sprintf("process://%s/%d", c.pod.prov.spec.Name, c.pid)
	}
	switch {
	case c.runningSince != nil:
		s.State.Running = &corev1.ContainerStateRunning{StartedAt: *c.runningSince}
	case c.terminated != nil && c.waitingReason == "":
		s.State.Terminated = c.terminated.DeepCopy()
	default:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waitingReason, Message: c.waitingMessage}
	}
	if c.lastTerminated != nil {
		s.LastTerminationState.Terminated = c.lastTerminated.DeepCopy()
	}
	return s
}

// willRestart tells whether a container that exited with code would be started again.
func (c *containerRuntime) willRestart(code int32) bool {
	if c.pod.terminating {
		return false
	}
	switch c.pod.pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	default:
		return !c.init || code != 0
	}
}

// blockOnImage keeps a container of an unknown image waiting until the pod goes.
func (c *containerRuntime) blockOnImage() {
	c.pod.event(corev1.EventTypeWarning, "ErrImageNeverPull", "%v", c.imageErr)
	c.pod.changed()
	<-c.pod.stopCh
}

// supervise runs a (non-init) container until it should not run any more.
func (c *containerRuntime) supervise() {
	if c.imageErr != nil {
		c.blockOnImage()
		return
	}
	for !c.pod.stopping() {
		code := c.runOnce()
		c.pod.mu.Lock()
		again := c.willRestart(code)
		c.pod.mu.Unlock()
		if !again || !c.backOff() {
			return
		}
	}
}

// backOff waits the crash-loop back-off before the next start (10 s doubling to 5 min, reset after
// 10 min of running); false when the pod was stopped meanwhile.
func (c *containerRuntime) backOff() bool {
	c.pod.mu.Lock()
	ranFor := time.Duration(0)
	if c.lastTerminated != nil {
		ranFor = c.lastTerminated.FinishedAt.Sub(c.lastTerminated.StartedAt.Time)
	}
	if c.backoff == 0 || ranFor >= backoffReset {
		c.backoff = initialBackoff
	} else {
		c.backoff = min(c.backoff*2, maxBackoff)
	}
	d := c.backoff
	if c.terminated != nil {
		c.lastTerminated = c.terminated
	}
	c.terminated = nil
	c.waitingReason = "CrashLoopBackOff"
	c.waitingMessage = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", d, c.spec.Name, c.pod.pod.Name, c.pod.pod.Namespace, c.pod.pod.UID)
	c.pod.mu.Unlock()
	c.pod.event(corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.spec.Name, c.pod.pod.Name)
	c.pod.changed()
	return c.pod.sleep(d)
}

// runOnce starts the container's process and waits for it; returns its exit code.
func (c *containerRuntime) runOnce() int32 {
	c.pod.mu.Lock()
	restart := c.restartCount
	if c.terminated != nil {
		c.lastTerminated = c.terminated
		c.terminated = nil
	}
	if c.lastTerminated != nil {
		// Not the first run: the kubelet counts restarts.
		restart++
		c.restartCount = restart
	}
	c.pod.mu.Unlock()

	started := metav1.Now()
	cmd, logDone, err := c.start(restart)
	if err != nil {
		c.finish(started, 128, "StartError", err.Error())
		c.pod.event(corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return 128
	}
	exitCh := make(chan struct{})
	c.pod.mu.Lock()
	c.pid = cmd.Process.Pid
	c.runningSince = &started
	c.waitingReason, c.waitingMessage = "", ""
	c.ready = false
	c.startedProbe = c.spec.StartupProbe == nil
	c.exitCh = exitCh
	c.killOnce = &sync.Once{}
	c.pod.mu.Unlock()
	c.pod.event(corev1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)
	c.pod.changed()

	stopProbes := make(chan struct{})
	if !c.init {
		go c.probe(stopProbes)
		go c.postStart()
	}
	waitErr := cmd.Wait()
	close(stopProbes)
	<-logDone
	pid := cmd.Process.Pid
	// Whatever the container left behind goes with it, as with a container's init process.
	killGroup(pid, syscall.SIGKILL)
	c.pod.rt.cgroups.killAll(c.cgroupPath())
	close(exitCh)

	code, reason := exitStatus(cmd.ProcessState, waitErr)
	message := c.terminationMessage(code, restart)
	if data, err := os.ReadFile(filepath.Join(c.dir(), "sandbox-error")); err == nil && len(data) > 0 {
		reason, message = "StartError", strings.TrimSpace(string(data))
		c.pod.event(corev1.EventTypeWarning, "Failed", "Error: %s", message)
	}
	c.finish(started, code, reason, message)
	return code
}

func (c *containerRuntime) finish(started metav1.Time, code int32, reason, message string) {
	c.pod.mu.Lock()
	c.runningSince = nil
	c.ready = false
	c.terminated = &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: message,
		StartedAt: started, FinishedAt: metav1.Now(),
		ContainerID: fmt.Sprintf("process://%s/%d", c.pod.prov.spec.Name, c.pid),
	}
	c.waitingReason, c.waitingMessage = "", ""
	c.pod.mu.Unlock()
	c.pod.changed()
}

func exitStatus(ps *os.ProcessState, waitErr error) (int32, string) {
	if ps == nil {
		return 128, "StartError"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return int32(128 + int(ws.Signal())), "Error"
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return 128, "StartError"
	}
	code := int32(ps.ExitCode())
	if code == 0 {
		return 0, "Completed"
	}
	return code, "Error"
}

// terminationMessage reads the file the container wrote at terminationMessagePath (at most 4 KiB),
// or with FallbackToLogsOnError and a failure, the tail of its log.
func (c *containerRuntime) terminationMessage(code int32, restart int32) string {
	data, _ := os.ReadFile(filepath.Join(c.dir(), "termination-log"))
	if len(data) > maxTerminationMessage {
		data = data[:maxTerminationMessage]
	}
	if len(data) > 0 || code == 0 || c.spec.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		return string(data)
	}
	lines := readLogLines(c.logPath(restart))
	if len(lines) > fallbackLogLines {
		lines = lines[len(lines)-fallbackLogLines:]
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	s := b.String()
	if len(s) > fallbackLogBytes {
		s = s[len(s)-fallbackLogBytes:]
	}
	return s
}

// start launches the sandbox (process-node sandbox SPEC) that becomes the container's process.
func (c *containerRuntime) start(restart int32) (*exec.Cmd, <-chan struct{}, error) {
	if err := os.MkdirAll(filepath.Join(c.dir(), "logs"), 0o755); err != nil {
		return nil, nil, err
	}
	spec, err := c.sandboxSpec()
	if err != nil {
		return nil, nil, err
	}
	specFile := filepath.Join(c.dir(), "sandbox.json")
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(specFile, data, 0o600); err != nil {
		return nil, nil, err
	}
	_ = os.Remove(filepath.Join(c.dir(), "sandbox-error"))
	// A fresh termination-log file for every run, writable by the container's user.
	tl := filepath.Join(c.dir(), "termination-log")
	if err := os.WriteFile(tl, nil, 0o666); err != nil {
		return nil, nil, err
	}
	_ = os.Chmod(tl, 0o666)
	if err := c.pod.rt.cgroups.create(c.cgroupPath(), c.spec.Resources.Limits.Cpu().MilliValue()); err != nil {
		log.L.WithError(err).Warnf("pod %s: cgroup for %s", c.pod.name(), c.spec.Name)
	}

	logFile, err := os.OpenFile(c.logPath(restart), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	// The sandbox gets the write end of a pipe as fd 3, close-on-exec: the read end sees EOF once the
	// container's own command has been exec'd (or the sandbox has failed), and not before.
	execRead, execWrite, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	cmd := exec.Command(c.pod.rt.self, "sandbox", specFile)
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{execWrite}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	err = cmd.Start()
	execWrite.Close()
	if err != nil {
		execRead.Close()
		logFile.Close()
		return nil, nil, err
	}
	w := &logWriter{f: logFile}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.copy("stdout", stdout) }()
	go func() { defer wg.Done(); w.copy("stderr", stderr) }()
	go func() { wg.Wait(); logFile.Close(); close(done) }()
	// Running means the container's command runs: wait for the exec (the sandbox's setup takes ms).
	_, _ = io.Copy(io.Discard, execRead)
	execRead.Close()
	return cmd, done, nil
}

// logWriter writes a container's output in the CRI log format: "<RFC3339Nano> <stream> F <line>".
type logWriter struct {
	mu sync.Mutex
	f  *os.File
}

func (w *logWriter) copy(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			tag := "F"
			if !strings.HasSuffix(line, "\n") {
				tag = "P"
			}
			w.mu.Lock()
			fmt.Fprintf(w.f, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, tag, strings.TrimSuffix(line, "\n"))
			w.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// stop ends the running process: preStop hook, SIGTERM to its process group, SIGKILL at the deadline.
func (c *containerRuntime) stop(deadline time.Time, runHooks bool, what string) {
	c.pod.mu.Lock()
	pid, exitCh, running := c.pid, c.exitCh, c.runningSince != nil
	c.pod.mu.Unlock()
	if !running || exitCh == nil {
		return
	}
	c.pod.event(corev1.EventTypeNormal, "Killing", what, c.spec.Name)
	if runHooks && c.spec.Lifecycle != nil && c.spec.Lifecycle.PreStop != nil {
		hookDone := make(chan struct{})
		go func() {
			defer close(hookDone)
			if err := c.runHandler(c.spec.Lifecycle.PreStop, time.Until(deadline)); err != nil {
				c.pod.event(corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
			}
		}()
		select {
		case <-hookDone:
		case <-exitCh:
		case <-time.After(time.Until(deadline)):
		}
	}
	killGroup(pid, syscall.SIGTERM)
	select {
	case <-exitCh:
	case <-time.After(time.Until(deadline)):
		killGroup(pid, syscall.SIGKILL)
		c.pod.rt.cgroups.killAll(c.cgroupPath())
		<-exitCh
	}
}

func killGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// postStart runs the postStart hook; a failure kills the container, as the kubelet does.
func (c *containerRuntime) postStart() {
	if c.spec.Lifecycle == nil || c.spec.Lifecycle.PostStart == nil {
		return
	}
	if err := c.runHandler(c.spec.Lifecycle.PostStart, 30*time.Second); err != nil {
		c.pod.event(corev1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %v", err)
		c.kill("postStart hook failed")
	}
}

// kill ends the current process at once (a failed liveness probe or hook), with the pod's grace period.
func (c *containerRuntime) kill(why string) {
	c.pod.mu.Lock()
	once := c.killOnce
	c.pod.mu.Unlock()
	if once == nil {
		return
	}
	once.Do(func() {
		grace := 30 * time.Second
		if g := c.pod.pod.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		go c.stop(time.Now().Add(grace), true, "Container %s "+strings.ReplaceAll(why, "%", "%%")+", will be restarted")
	})
}
