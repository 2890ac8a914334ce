package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/log"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// processRuntime is shared by all nodes of this process: the image table, the pod IP allocator and
// every pod's runtime state.
type processRuntime struct {
	ctx      context.Context
	cfg      *Config
	images   *ImageTable
	client   kubernetes.Interface
	ipam     *ipam
	recorder record.EventRecorder
	tls      *tls.Config
	self     string
	cgroups  *cgroups

	mu   sync.Mutex
	pods map[string]*podRuntime // "namespace/name"
}

func newRuntime(ctx context.Context, cfg *Config, images *ImageTable, client kubernetes.Interface) (*processRuntime, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"pods", "volumes"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	tlsCfg, err := nodeTLS(cfg)
	if err != nil {
		return nil, err
	}
	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	addrs, err := ipamFor(cfg.PodNetworkPrefix)
	if err != nil {
		return nil, err
	}
	return &processRuntime{
		ctx:      ctx,
		cfg:      cfg,
		images:   images,
		client:   client,
		ipam:     addrs,
		recorder: eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: "process-node"}),
		tls:      tlsCfg,
		self:     self,
		cgroups:  newCgroups(cfg.CgroupName),
		pods:     map[string]*podRuntime{},
	}, nil
}

// nodeTLS serves the node API with a self-signed certificate and accepts only clients whose
// certificate the cluster CA signed (the API server's kubelet client certificate).
func nodeTLS(cfg *Config) (*tls.Config, error) {
	ips := make([]string, 0, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		ips = append(ips, n.Address)
	}
	cert, err := selfSignedCert(ips)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(cfg.ClusterCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", cfg.ClusterCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func key(namespace, name string) string { return namespace + "/" + name }

// stopAll stops every pod at once (harness shutdown): SIGTERM, SIGKILL after grace.
func (rt *processRuntime) stopAll(grace time.Duration) {
	rt.mu.Lock()
	pods := make([]*podRuntime, 0, len(rt.pods))
	for _, p := range rt.pods {
		pods = append(pods, p)
	}
	rt.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func(p *podRuntime) {
			defer wg.Done()
			p.terminate(grace, false)
			<-p.done
			p.cleanup()
		}(p)
	}
	wg.Wait()
}

// nodeProvider is the virtual-kubelet provider of one node.
type nodeProvider struct {
	rt         *processRuntime
	spec       NodeSpec
	configMaps corev1listers.ConfigMapLister
	secrets    corev1listers.SecretLister
	notify     func(*corev1.Pod)
	notifyMu   sync.Mutex
}

var _ nodeutil.Provider = (*nodeProvider)(nil)
var _ node.PodNotifier = (*nodeProvider)(nil)

func (rt *processRuntime) newNode(spec NodeSpec) (*nodeutil.Node, error) {
	var prov *nodeProvider
	newProvider := func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		prov = &nodeProvider{rt: rt, spec: spec, configMaps: pc.ConfigMaps, secrets: pc.Secrets}
		fillNode(pc.Node, spec, rt.cfg.NodeAPIPort)
		return prov, nil, nil
	}
	mux := http.NewServeMux()
	return nodeutil.NewNode(spec.Name, newProvider,
		nodeutil.WithClient(rt.client),
		func(c *nodeutil.NodeConfig) error {
			c.HTTPListenAddr = fmt.Sprintf("%s:%d", spec.Address, rt.cfg.NodeAPIPort)
			c.TLSConfig = rt.tls
			c.Handler = mux
			c.NumWorkers = 4
			// Env is resolved here (fieldRef status.podIP needs the address this node assigns).
			c.SkipDownwardAPIResolution = true
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
	)
}

func fillNode(n *corev1.Node, spec NodeSpec, port int) {
	for k, v := range spec.Labels {
		n.Labels[k] = v
	}
	n.Labels["kubernetes.io/hostname"] = spec.Name
	delete(n.Labels, "kubernetes.io/role")
	for _, t := range spec.Taints {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	capacity := corev1.ResourceList{}
	for k, v := range spec.Capacity {
		capacity[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	n.Status.Capacity = capacity
	n.Status.Allocatable = capacity.DeepCopy()
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: spec.Address},
		{Type: corev1.NodeHostName, Address: spec.Name},
	}
	n.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}}
	arch := spec.Labels["kubernetes.io/arch"]
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		Architecture:            arch,
		OperatingSystem:         "linux",
		KubeletVersion:          "v1.36.3-whisperops-process-node",
		ContainerRuntimeVersion: "process://whisperops",
		OSImage:                 "host processes (whisperops process node)",
		KernelVersion:           kernelRelease(),
	}
}

func (p *nodeProvider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.notifyMu.Lock()
	p.notify = cb
	p.notifyMu.Unlock()
}

func (p *nodeProvider) send(pod *corev1.Pod) {
	p.notifyMu.Lock()
	cb := p.notify
	p.notifyMu.Unlock()
	if cb != nil {
		cb(pod)
	}
}

func (p *nodeProvider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	p.rt.mu.Lock()
	if existing, ok := p.rt.pods[k]; ok && existing.pod.UID == pod.UID {
		p.rt.mu.Unlock()
		return nil
	}
	p.rt.mu.Unlock()
	pr, err := newPodRuntime(p, pod)
	if err != nil {
		return err
	}
	p.rt.mu.Lock()
	p.rt.pods[k] = pr
	p.rt.mu.Unlock()
	log.G(ctx).WithField("pod", k).WithField("ip", pr.ip).Info("starting pod")
	go pr.run()
	return nil
}

func (p *nodeProvider) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	p.rt.mu.Lock()
	pr, ok := p.rt.pods[key(pod.Namespace, pod.Name)]
	p.rt.mu.Unlock()
	if !ok || pr.pod.UID != pod.UID {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	pr.update(pod)
	return nil
}

func (p *nodeProvider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	p.rt.mu.Lock()
	pr, ok := p.rt.pods[k]
	p.rt.mu.Unlock()
	if !ok {
		return errdefs.NotFoundf("pod %s is not on this node", k)
	}
	grace := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	go func() {
		pr.terminate(grace, true)
		<-pr.done
		pr.cleanup()
		p.rt.mu.Lock()
		if cur, ok := p.rt.pods[k]; ok && cur == pr {
			delete(p.rt.pods, k)
		}
		p.rt.mu.Unlock()
		p.removeFromAPI(pod)
	}()
	return nil
}

// removeFromAPI deletes a terminated pod's object at once, as the kubelet's status manager does once
// every container has ended and the API has the final status. (virtual-kubelet itself only
// force-deletes it when the whole grace period has passed, so a pod whose containers exit promptly
// on SIGTERM would otherwise stay Terminating until then.)
func (p *nodeProvider) removeFromAPI(pod *corev1.Pod) {
	pods := p.rt.client.CoreV1().Pods(pod.Namespace)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.rt.ctx, 5*time.Second)
		cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != pod.UID) {
			return
		}
		if err == nil && (cur.Status.Phase == corev1.PodSucceeded || cur.Status.Phase == corev1.PodFailed) {
			break
		}
		select {
		case <-p.rt.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithTimeout(p.rt.ctx, 10*time.Second)
	defer cancel()
	zero := int64(0)
	err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		log.L.WithError(err).Warnf("pod %s/%s: final delete", pod.Namespace, pod.Name)
	}
}

func (p *nodeProvider) lookup(namespace, name string) (*podRuntime, error) {
	p.rt.mu.Lock()
	defer p.rt.mu.Unlock()
	pr, ok := p.rt.pods[key(namespace, name)]
	if !ok || pr.prov != p {
		return nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, p.spec.Name)
	}
	return pr, nil
}

func (p *nodeProvider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	pr, err := p.lookup(namespace, name)
	if err != nil {
		return nil, err
	}
	return pr.snapshot(), nil
}

func (p *nodeProvider) GetPodStatus(_ context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pr, err := p.lookup(namespace, name)
	if err != nil {
		return nil, err
	}
	s := pr.snapshot().Status
	return &s, nil
}

func (p *nodeProvider) GetPods(_ context.Context) ([]*corev1.Pod, error) {
	p.rt.mu.Lock()
	var out []*podRuntime
	for _, pr := range p.rt.pods {
		if pr.prov == p {
			out = append(out, pr)
		}
	}
	p.rt.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(out))
	for _, pr := range out {
		pods = append(pods, pr.snapshot())
	}
	sort.Slice(pods, func(i, j int) bool {
		return key(pods[i].Namespace, pods[i].Name) < key(pods[j].Namespace, pods[j].Name)
	})
	return pods, nil
}

func (p *nodeProvider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	pr, err := p.lookup(namespace, podName)
	if err != nil {
		return nil, err
	}
	return pr.logs(ctx, containerName, opts)
}

func (p *nodeProvider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	pr, err := p.lookup(namespace, podName)
	if err != nil {
		return err
	}
	return pr.exec(ctx, containerName, cmd, attach)
}

func (p *nodeProvider) AttachToContainer(context.Context, string, string, string, api.AttachIO) error {
	return errdefs.InvalidInput("attach is not supported on process nodes: use kubectl logs -f")
}

func (p *nodeProvider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.spec.Name, StartTime: metav1.NewTime(startTime)}}, nil
}

func (p *nodeProvider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

func (p *nodeProvider) PortForward(context.Context, string, string, int32, io.ReadWriteCloser) error {
	return errdefs.InvalidInput("port-forward is not supported on process nodes: every pod listens on its own 127.x address")
}

var startTime = time.Now()
