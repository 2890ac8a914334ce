package main

import (
	"fmt"
	"net"
	"sync"
)

// ipam hands out pod addresses 127.B.1.1 … 127.B.250.254 (127.B.0.x are the nodes'), lowest free first.
type ipam struct {
	prefix string
	mu     sync.Mutex
	used   map[int]string // index → pod uid
	byPod  map[string]int
}

func ipamFor(prefix string) (*ipam, error) {
	ip := net.ParseIP(prefix + ".0.0")
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("pod network prefix %q must be 127.B", prefix)
	}
	return &ipam{prefix: prefix, used: map[int]string{}, byPod: map[string]int{}}, nil
}

const ipsPerBlock = 254

func (a *ipam) address(i int) string {
	return fmt.Sprintf("%s.%d.%d", a.prefix, 1+i/ipsPerBlock, 1+i%ipsPerBlock)
}

func (a *ipam) allocate(uid string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.byPod[uid]; ok {
		return a.address(i), nil
	}
	for i := 0; i < 250*ipsPerBlock; i++ {
		if _, taken := a.used[i]; !taken {
			a.used[i] = uid
			a.byPod[uid] = i
			return a.address(i), nil
		}
	}
	return "", fmt.Errorf("no free pod address in %s.0.0/16", a.prefix)
}

func (a *ipam) release(uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.byPod[uid]; ok {
		delete(a.used, i)
		delete(a.byPod, uid)
	}
}
