package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/log"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const provisionerName = "whisperops.dev/local-path"

// runProvisioner is a local-path dynamic provisioner (the shape of rancher's local-path-provisioner):
// the StorageClass cfg.StorageClass (the cluster's default) provisions, for each claim, a hostPath
// PersistentVolume under <state dir>/volumes/<pv name>; the PV controller of kube-controller-manager
// binds them. A Released volume of ours (reclaimPolicy Delete) loses its folder and its PV object.
func runProvisioner(ctx context.Context, client kubernetes.Interface, cfg *Config) {
	if cfg.StorageClass == "" {
		return
	}
	bindingMode := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        cfg.StorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       provisionerName,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &bindingMode,
	}
	if _, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		log.L.WithError(err).Error("cannot create the local-path StorageClass")
		return
	}
	factory := informers.NewSharedInformerFactory(client, time.Minute)
	pvcs := factory.Core().V1().PersistentVolumeClaims().Informer()
	pvs := factory.Core().V1().PersistentVolumes().Informer()
	_, _ = pvcs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { provision(ctx, client, cfg, obj) },
		UpdateFunc: func(_, obj any) { provision(ctx, client, cfg, obj) },
	})
	_, _ = pvs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { reclaimVolume(ctx, client, obj) },
		UpdateFunc: func(_, obj any) { reclaimVolume(ctx, client, obj) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
}

func provision(ctx context.Context, client kubernetes.Interface, cfg *Config, obj any) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending {
		return
	}
	if pvc.Annotations["volume.kubernetes.io/storage-provisioner"] != provisionerName &&
		pvc.Annotations["volume.beta.kubernetes.io/storage-provisioner"] != provisionerName {
		return
	}
	name := "pvc-" + string(pvc.UID)
	path := filepath.Join(cfg.StateDir, "volumes", name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		log.L.WithError(err).Errorf("provision %s/%s", pvc.Namespace, pvc.Name)
		return
	}
	_ = os.Chmod(path, 0o777)
	hostPathType := corev1.HostPathDirectoryOrCreate
	class := cfg.StorageClass
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathType}},
		},
	}
	if _, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		log.L.WithError(err).Errorf("provision %s/%s", pvc.Namespace, pvc.Name)
		return
	}
	log.L.Infof("provisioned %s for claim %s/%s at %s", name, pvc.Namespace, pvc.Name, path)
}

func reclaimVolume(ctx context.Context, client kubernetes.Interface, obj any) {
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok || pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.HostPath == nil {
		return
	}
	if err := os.RemoveAll(pv.Spec.HostPath.Path); err != nil {
		log.L.WithError(err).Errorf("reclaim %s", pv.Name)
		return
	}
	if err := client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		log.L.WithError(err).Errorf("delete %s", pv.Name)
		return
	}
	log.L.Infof("deleted released volume %s", pv.Name)
}
