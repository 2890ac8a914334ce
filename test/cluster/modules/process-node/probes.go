package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probe runs the container's startup, readiness and liveness probes until stop closes.
func (c *containerRuntime) probe(stop <-chan struct{}) {
	sp := c.spec.StartupProbe
	if sp != nil {
		if !c.runProbe(stop, sp, "Startup", func(ok bool) bool {
			if ok {
				c.pod.mu.Lock()
				c.startedProbe = true
				c.pod.mu.Unlock()
				c.pod.changed()
				return false // done
			}
			return true
		}) {
			return
		}
	}
	if c.spec.ReadinessProbe == nil {
		c.pod.mu.Lock()
		c.ready = true
		c.pod.mu.Unlock()
		c.pod.changed()
	} else {
		go c.runProbe(stop, c.spec.ReadinessProbe, "Readiness", func(ok bool) bool {
			c.pod.mu.Lock()
			was := c.ready
			c.ready = ok
			c.pod.mu.Unlock()
			if was != ok {
				c.pod.changed()
			}
			return true
		})
	}
	if lp := c.spec.LivenessProbe; lp != nil {
		go c.runProbe(stop, lp, "Liveness", func(ok bool) bool {
			if !ok {
				c.kill("failed liveness probe")
				return false
			}
			return true
		})
	}
}

// runProbe calls onResult with each settled result (after successThreshold / failureThreshold
// consecutive results); it stops when onResult returns false (then it returns true) or when stop
// closes (false).
func (c *containerRuntime) runProbe(stop <-chan struct{}, p *corev1.Probe, kind string, onResult func(bool) bool) bool {
	period := secondsOr(p.PeriodSeconds, 10)
	timeout := secondsOr(p.TimeoutSeconds, 1)
	successes, failures := 0, 0
	// The API server defaults failureThreshold to 3 and successThreshold to 1; explicit values (1
	// and 2 included) count as given.
	succeedAt, failAt := int(max(p.SuccessThreshold, 1)), int(p.FailureThreshold)
	if failAt < 1 {
		failAt = 3
	}
	wait := time.Duration(p.InitialDelaySeconds) * time.Second
	for {
		select {
		case <-stop:
			return false
		case <-time.After(wait):
		}
		wait = period
		err := c.probeOnce(&p.ProbeHandler, timeout)
		if err == nil {
			successes++
			failures = 0
			if successes >= succeedAt && !onResult(true) {
				return true
			}
			continue
		}
		failures++
		successes = 0
		c.pod.event(corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %v", kind, err)
		if failures >= failAt {
			if !onResult(false) {
				return true
			}
		}
	}
}

func secondsOr(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

// port resolves a named or numbered port of the container.
func (c *containerRuntime) port(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.spec.Name, p.StrVal)
}

// loopbackHost is the host to dial: the pod's IP unless the probe names another loopback address;
// nothing here ever dials outside 127.0.0.0/8.
func (c *containerRuntime) loopbackHost(host string) (string, error) {
	if host == "" {
		return c.pod.ip, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("host %q is not a loopback address: process nodes only dial 127.0.0.0/8", host)
	}
	return host, nil
}

func (c *containerRuntime) probeOnce(h *corev1.ProbeHandler, timeout time.Duration) error {
	switch {
	case h.HTTPGet != nil:
		return c.httpGet(h.HTTPGet, timeout)
	case h.TCPSocket != nil:
		port, err := c.port(h.TCPSocket.Port)
		if err != nil {
			return err
		}
		host, err := c.loopbackHost(h.TCPSocket.Host)
		if err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	case h.Exec != nil:
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var out strings.Builder
		err := c.execIn(ctx, h.Exec.Command, nil, &out, &out)
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out.String()))
		}
		return nil
	case h.GRPC != nil:
		return fmt.Errorf("grpc probes are not supported on process nodes")
	}
	return fmt.Errorf("probe has no handler")
}

func (c *containerRuntime) httpGet(g *corev1.HTTPGetAction, timeout time.Duration) error {
	port, err := c.port(g.Port)
	if err != nil {
		return err
	}
	host, err := c.loopbackHost(g.Host)
	if err != nil {
		return err
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.36")
	for _, hd := range g.HTTPHeaders {
		if strings.EqualFold(hd.Name, "host") {
			req.Host = hd.Value
		} else {
			req.Header.Add(hd.Name, hd.Value)
		}
	}
	client := &http.Client{Timeout: timeout, Transport: probeTransport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	if res.StatusCode < 200 || res.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d %s", res.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

var probeTransport = &http.Transport{DisableKeepAlives: true, TLSClientConfig: insecureTLS()}

// runHandler runs a lifecycle hook (exec, httpGet or sleep).
func (c *containerRuntime) runHandler(h *corev1.LifecycleHandler, timeout time.Duration) error {
	switch {
	case h.Exec != nil:
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var out strings.Builder
		if err := c.execIn(ctx, h.Exec.Command, nil, &out, &out); err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out.String()))
		}
		return nil
	case h.HTTPGet != nil:
		return c.httpGet(h.HTTPGet, timeout)
	case h.Sleep != nil:
		d := time.Duration(h.Sleep.Seconds) * time.Second
		if d > timeout {
			d = timeout
		}
		time.Sleep(d)
		return nil
	}
	return fmt.Errorf("hook has no handler")
}

// execIn runs a command inside the running container: its mount and UTS namespaces, root, working
// dir, user and environment (nsenter from util-linux: a Go program cannot enter a mount namespace).
func (c *containerRuntime) execIn(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.pod.mu.Lock()
	pid, running := c.pid, c.runningSince != nil
	c.pod.mu.Unlock()
	if !running || pid == 0 {
		return fmt.Errorf("container %s is not running", c.spec.Name)
	}
	if len(argv) == 0 {
		return fmt.Errorf("no command")
	}
	pod := c.pod.currentPod()
	uid, gid, err := userOf(pod, &c.spec, c.image)
	if err != nil {
		return err
	}
	env, _, err := containerEnv(pod, &c.spec, c.image, c.pod.ip, c.pod.prov.spec.Address, c.pod.rt.cfg.APIServerHost, c.pod.rt.cfg.APIServerPort, c.pod, c.pod.nodeCapacity())
	if err != nil {
		return err
	}
	env = append(env, "WHISPEROPS_POD_IP="+c.pod.ip)
	// LD_PRELOAD is set by env(1) inside the container: nsenter itself starts outside, where the shim's
	// path does not exist.
	args := []string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--root", "--wd",
		"--setuid", strconv.Itoa(int(uid)), "--setgid", strconv.Itoa(int(gid)), "--", "env", "LD_PRELOAD=" + shimInContainer}
	cmd := exec.CommandContext(ctx, "nsenter", append(args, argv...)...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = 2 * time.Second
	return cmd.Run()
}

// exec serves kubectl exec (no TTY).
func (p *podRuntime) exec(ctx context.Context, container string, argv []string, attach api.AttachIO) error {
	c, err := p.containerNamed(container)
	if err != nil {
		return err
	}
	if attach.TTY() {
		return fmt.Errorf("kubectl exec -t is not supported on process nodes (no terminal); drop -t")
	}
	var stdout, stderr io.Writer = io.Discard, io.Discard
	if attach.Stdout() != nil {
		stdout = attach.Stdout()
	}
	if attach.Stderr() != nil {
		stderr = attach.Stderr()
	}
	var stdin io.Reader
	if attach.Stdin() != nil {
		stdin = attach.Stdin()
	}
	return c.execIn(ctx, argv, stdin, stdout, stderr)
}
