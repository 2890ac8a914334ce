// process-node: process-backed Kubernetes nodes for the whisperops local cluster.
//
// One process registers several nodes with virtual-kubelet's nodeutil (one Node object, Lease and pod
// informer each). Pods bound to them whose images are in the image table (test/cluster/images.yaml)
// run as host processes, each container in a sandbox of its own (a mount namespace over a copy-on-write
// view of the host, the image's files and the pod's volumes mounted where the pod spec says, its own
// loopback IP): see sandbox.go. Pods of any other image are not started and say why.
//
// Usage:
//
//	process-node run --config FILE      run the nodes described in FILE (written by test/cluster/process-nodes.ts)
//	process-node sandbox FILE           (internal) set up a container's sandbox and exec its command
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/virtual-kubelet/virtual-kubelet/log"
	logruslogger "github.com/virtual-kubelet/virtual-kubelet/log/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is the file the harness writes (process-nodes.ts); paths are absolute.
type Config struct {
	// StateDir holds pods' folders, logs and local volumes.
	StateDir string `json:"stateDir"`
	// ImagesFile is the image table.
	ImagesFile string `json:"imagesFile"`
	// Vars expands ${NAME} in the image table (REPO, NODE_BIN_DIR, PYTHON_VENV, ...).
	Vars map[string]string `json:"vars"`
	// BindShim is the LD_PRELOAD library that binds wildcard listeners to the pod's IP.
	BindShim string `json:"bindShim"`
	// PodNetworkPrefix is "127.B": nodes get 127.B.0.N, pods 127.B.1.1 upwards.
	PodNetworkPrefix string `json:"podNetworkPrefix"`
	// APIServerHost and APIServerPort are what pods get as KUBERNETES_SERVICE_HOST/PORT.
	APIServerHost string `json:"apiServerHost"`
	APIServerPort int    `json:"apiServerPort"`
	// ClusterCAFile verifies the API server's client certificate on the node API.
	ClusterCAFile string `json:"clusterCAFile"`
	// NodeAPIPort is the port of every node's API (logs, exec) on its own address.
	NodeAPIPort int `json:"nodeAPIPort"`
	// CgroupName is the cgroup (v1, cpu controller) every pod of this cluster lives under.
	CgroupName string `json:"cgroupName"`
	// VolumeSyncSeconds is how often ConfigMap/Secret/downward API/token volumes are refreshed.
	VolumeSyncSeconds int `json:"volumeSyncSeconds"`
	// StorageClass is the name of the local-path StorageClass this program provisions for.
	StorageClass string     `json:"storageClass"`
	Nodes        []NodeSpec `json:"nodes"`
}

// NodeSpec describes one node to register.
type NodeSpec struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Taints   []TaintSpec       `json:"taints"`
	Capacity map[string]string `json:"capacity"`
	// Address is the node's InternalIP (127.B.0.N): the node API listens there.
	Address string `json:"address"`
	// Note is added to pods' logs and events on this node (e.g. "no GPU: the trainer runs on the CPU").
	Note string `json:"note"`
}

// TaintSpec is a node taint.
type TaintSpec struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Effect string `json:"effect"`
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "sandbox" {
		runSandbox(os.Args[2]) // never returns
	}
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: process-node run --config FILE [--kubeconfig FILE]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	configFile := fs.String("config", "", "config file written by the harness")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the node identity")
	level := fs.String("log-level", "info", "log level")
	_ = fs.Parse(os.Args[2:])

	logger := logrus.StandardLogger()
	if lvl, err := logrus.ParseLevel(*level); err == nil {
		logger.SetLevel(lvl)
	}
	logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	log.L = logruslogger.FromLogrus(logrus.NewEntry(logger))

	if err := run(*configFile, *kubeconfig); err != nil {
		log.L.WithError(err).Error("process-node failed")
		os.Exit(1)
	}
}

func readConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.VolumeSyncSeconds <= 0 {
		c.VolumeSyncSeconds = 2
	}
	if c.NodeAPIPort == 0 {
		c.NodeAPIPort = 10250
	}
	return &c, nil
}

func run(configFile, kubeconfig string) error {
	cfg, err := readConfig(configFile)
	if err != nil {
		return err
	}
	images, err := loadImageTable(cfg.ImagesFile, cfg.Vars)
	if err != nil {
		return err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	restCfg.QPS = 50
	restCfg.Burst = 100
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	rt, err := newRuntime(ctx, cfg, images, client)
	if err != nil {
		return err
	}
	go runProvisioner(ctx, client, cfg)

	errs := make(chan error, len(cfg.Nodes))
	for _, spec := range cfg.Nodes {
		n, err := rt.newNode(spec)
		if err != nil {
			return fmt.Errorf("node %s: %w", spec.Name, err)
		}
		go func(name string) {
			if err := n.Run(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("node %s: %w", name, err)
			}
		}(spec.Name)
	}
	log.L.Infof("started %d process-backed nodes", len(cfg.Nodes))

	select {
	case s := <-sigs:
		log.L.Infof("received %s: stopping every pod", s)
	case err = <-errs:
		log.L.WithError(err).Error("a node stopped")
	}
	// Pods first (SIGTERM, then SIGKILL after at most 5 s), then the node controllers.
	rt.stopAll(5 * time.Second)
	cancel()
	return err
}
