package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// selfSignedCert serves the node API (the API server does not verify kubelet certificates unless
// --kubelet-certificate-authority is set; the local cluster does not set it).
func selfSignedCert(ips []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "whisperops-process-node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	for _, ip := range ips {
		if p := net.ParseIP(ip); p != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, p)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// insecureTLS is for HTTPS probes, which the kubelet also sends without verifying the certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // kubelet probes do not verify either
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return strings.TrimRight(string(u.Release[:]), "\x00")
}

// nodeCapacity is what unset limits default to in the downward API.
func (p *podRuntime) nodeCapacity() corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range p.prov.spec.Capacity {
		if q, err := resource.ParseQuantity(v); err == nil {
			out[corev1.ResourceName(k)] = q
		}
	}
	return out
}

// envResolver of a pod: ConfigMaps and Secrets of its namespace.
func (p *podRuntime) configMapKey(namespace, name, key string) (string, bool, error) {
	data, ok, err := p.vols.configMap(namespace, name)
	if err != nil || !ok {
		return "", false, err
	}
	v, ok := data[key]
	return string(v), ok, nil
}

func (p *podRuntime) secretKey(namespace, name, key string) (string, bool, error) {
	data, ok, err := p.vols.secret(namespace, name)
	if err != nil || !ok {
		return "", false, err
	}
	v, ok := data[key]
	return string(v), ok, nil
}

func (p *podRuntime) configMapData(namespace, name string) (map[string]string, bool, error) {
	data, ok, err := p.vols.configMap(namespace, name)
	out := map[string]string{}
	for k, v := range data {
		out[k] = string(v)
	}
	return out, ok, err
}

func (p *podRuntime) secretData(namespace, name string) (map[string]string, bool, error) {
	data, ok, err := p.vols.secret(namespace, name)
	out := map[string]string{}
	for k, v := range data {
		out[k] = string(v)
	}
	return out, ok, err
}
