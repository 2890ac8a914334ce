package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// envResolver answers the references an environment can make.
type envResolver interface {
	configMapKey(namespace, name, key string) (string, bool, error)
	secretKey(namespace, name, key string) (string, bool, error)
	configMapData(namespace, name string) (map[string]string, bool, error)
	secretData(namespace, name string) (map[string]string, bool, error)
}

// fieldValue resolves a downward API field path of the pod (metadata.*, spec.*, status.podIP/hostIP).
func fieldValue(pod *corev1.Pod, podIP, hostIP, path string) (string, error) {
	switch {
	case path == "metadata.name":
		return pod.Name, nil
	case path == "metadata.namespace":
		return pod.Namespace, nil
	case path == "metadata.uid":
		return string(pod.UID), nil
	case path == "spec.nodeName":
		return pod.Spec.NodeName, nil
	case path == "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case path == "status.podIP", path == "status.podIPs":
		return podIP, nil
	case path == "status.hostIP", path == "status.hostIPs":
		return hostIP, nil
	case path == "metadata.labels":
		return formatMap(pod.Labels), nil
	case path == "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case strings.HasPrefix(path, "metadata.labels['") && strings.HasSuffix(path, "']"):
		return pod.Labels[path[len("metadata.labels['"):len(path)-2]], nil
	case strings.HasPrefix(path, "metadata.annotations['") && strings.HasSuffix(path, "']"):
		return pod.Annotations[path[len("metadata.annotations['"):len(path)-2]], nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// formatMap renders labels/annotations as the kubelet's downward API files do: key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

// resourceValue resolves a resourceFieldRef (limits.cpu, requests.memory, ...) with its divisor.
func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, nodeCapacity corev1.ResourceList) (string, error) {
	var list corev1.ResourceList
	var name string
	switch {
	case strings.HasPrefix(ref.Resource, "limits."):
		list, name = c.Resources.Limits, strings.TrimPrefix(ref.Resource, "limits.")
	case strings.HasPrefix(ref.Resource, "requests."):
		list, name = c.Resources.Requests, strings.TrimPrefix(ref.Resource, "requests.")
	default:
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		// Unset limits default to the node's allocatable, as the kubelet does.
		q, ok = nodeCapacity[corev1.ResourceName(name)]
		if !ok {
			return "0", nil
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		// cpu rounds up to whole units of the divisor
		v := (q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue()
		return strconv.FormatInt(v, 10), nil
	}
	v := (q.Value() + divisor.Value() - 1) / divisor.Value()
	return strconv.FormatInt(v, 10), nil
}

// expandVars replaces $(NAME) with values from env; $$(NAME) escapes; unknown references stay as they are.
func expandVars(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// containerEnv is the environment of a container as the kubelet builds it (image env, then
// KUBERNETES_SERVICE_*, envFrom, env in order with $(VAR) expansion), plus the process node's own.
func containerEnv(pod *corev1.Pod, c *corev1.Container, img Image, podIP, hostIP string, apiHost string, apiPort int, r envResolver, nodeCapacity corev1.ResourceList) ([]string, map[string]string, error) {
	env := map[string]string{}
	order := []string{}
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	set("PATH", defaultPath)
	imgKeys := make([]string, 0, len(img.Env))
	for k := range img.Env {
		imgKeys = append(imgKeys, k)
	}
	sort.Strings(imgKeys)
	for _, k := range imgKeys {
		set(k, img.Env[k])
	}
	set("HOSTNAME", pod.Name)
	if _, ok := env["HOME"]; !ok {
		set("HOME", "/")
	}
	// The "kubernetes" Service as pods see it: here the API server's loopback address (no kube-proxy).
	port := strconv.Itoa(apiPort)
	set("KUBERNETES_SERVICE_HOST", apiHost)
	set("KUBERNETES_SERVICE_PORT", port)
	set("KUBERNETES_SERVICE_PORT_HTTPS", port)
	set("KUBERNETES_PORT", "tcp://"+apiHost+":"+port)
	set("KUBERNETES_PORT_443_TCP", "tcp://"+apiHost+":"+port)
	set("KUBERNETES_PORT_443_TCP_PROTO", "tcp")
	set("KUBERNETES_PORT_443_TCP_PORT", port)
	set("KUBERNETES_PORT_443_TCP_ADDR", apiHost)

	for _, from := range c.EnvFrom {
		var data map[string]string
		var found bool
		var err error
		optional := false
		switch {
		case from.ConfigMapRef != nil:
			optional = from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			data, found, err = r.configMapData(pod.Namespace, from.ConfigMapRef.Name)
			if err == nil && !found && !optional {
				err = fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
			}
		case from.SecretRef != nil:
			optional = from.SecretRef.Optional != nil && *from.SecretRef.Optional
			data, found, err = r.secretData(pod.Namespace, from.SecretRef.Name)
			if err == nil && !found && !optional {
				err = fmt.Errorf("secret %q not found", from.SecretRef.Name)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, env))
			continue
		}
		vf := e.ValueFrom
		var v string
		var err error
		switch {
		case vf.FieldRef != nil:
			v, err = fieldValue(pod, podIP, hostIP, vf.FieldRef.FieldPath)
		case vf.ResourceFieldRef != nil:
			v, err = resourceValue(c, vf.ResourceFieldRef, nodeCapacity)
		case vf.ConfigMapKeyRef != nil:
			var ok bool
			v, ok, err = r.configMapKey(pod.Namespace, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
			if err == nil && !ok {
				if vf.ConfigMapKeyRef.Optional != nil && *vf.ConfigMapKeyRef.Optional {
					continue
				}
				err = fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", vf.ConfigMapKeyRef.Key, pod.Namespace, vf.ConfigMapKeyRef.Name)
			}
		case vf.SecretKeyRef != nil:
			var ok bool
			v, ok, err = r.secretKey(pod.Namespace, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
			if err == nil && !ok {
				if vf.SecretKeyRef.Optional != nil && *vf.SecretKeyRef.Optional {
					continue
				}
				err = fmt.Errorf("couldn't find key %s in Secret %s/%s", vf.SecretKeyRef.Key, pod.Namespace, vf.SecretKeyRef.Name)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+env[k])
	}
	return out, env, nil
}

// commandLine is the argv of a container: command replaces the entrypoint (and drops the image's cmd),
// args replace the image's cmd; $(VAR) references are expanded from the container's environment.
func commandLine(c *corev1.Container, img Image, env map[string]string) []string {
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(argv, c.Command...)
		argv = append(argv, c.Args...)
	case len(c.Args) > 0:
		argv = append(append(argv, img.Entrypoint...), c.Args...)
	default:
		argv = append(append(argv, img.Entrypoint...), img.Cmd...)
	}
	for i := range argv {
		if len(c.Command) > 0 && i < len(c.Command) || i >= len(argv)-len(c.Args) && len(c.Args) > 0 {
			argv[i] = expandVars(argv[i], env)
		}
	}
	return argv
}
