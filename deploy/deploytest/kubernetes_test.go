package deploytest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/policy"
)

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// manifest is one document of a manifest file.
type manifest struct {
	file       string
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	node       *yaml.Node
}

type deploymentSpec struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
		FSGroup      *int64 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int   `yaml:"defaultMode"`
	} `yaml:"secret"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	EmptyDir *struct{} `yaml:"emptyDir"`
}

type serviceSpec struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type dataObject struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// k8sNamespace is the namespace of every namespaced object.
const k8sNamespace = "agentcost"

// loadManifests parses every document of every YAML file in deploy/kubernetes.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(deployPath(t, "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	var out []manifest
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			m := manifest{file: filepath.Base(f), node: &n}
			if err := n.Decode(&m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, m)
		}
	}
	return out
}

// decode decodes a manifest into v or fails the test.
func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", m.file, m.Kind, m.Metadata.Name, err)
	}
}

// k8sObjects are the manifests by kind; each kind must appear exactly once.
type k8sObjects map[string]manifest

func objectsByKind(t *testing.T, ms []manifest) k8sObjects {
	t.Helper()
	objs := k8sObjects{}
	want := map[string]string{ // kind -> apiVersion
		"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "PersistentVolumeClaim": "v1", "Service": "v1",
		"Deployment": "apps/v1", "Kustomization": "kustomize.config.k8s.io/v1beta1",
	}
	for _, m := range ms {
		api, known := want[m.Kind]
		switch {
		case !known:
			t.Errorf("%s: unexpected kind %q", m.file, m.Kind)
		case m.APIVersion != api:
			t.Errorf("%s: %s apiVersion %q, want %q", m.file, m.Kind, m.APIVersion, api)
		}
		if _, dup := objs[m.Kind]; dup {
			t.Errorf("%s: a second %s", m.file, m.Kind)
		}
		objs[m.Kind] = m
		if m.Kind == "Kustomization" {
			continue
		}
		if m.Metadata.Name == "" {
			t.Errorf("%s: %s without metadata.name", m.file, m.Kind)
		}
		if m.Kind != "Namespace" && m.Metadata.Namespace != k8sNamespace {
			t.Errorf("%s: %s %s in namespace %q, want %q", m.file, m.Kind, m.Metadata.Name, m.Metadata.Namespace, k8sNamespace)
		}
	}
	for kind := range want {
		if _, ok := objs[kind]; !ok {
			t.Errorf("no %s manifest", kind)
		}
	}
	return objs
}

// TestKubernetesManifests checks the manifests' key facts and how they fit together: one replica
// recreated (never two pods on the embedded ledger), the PVC on /var/lib/agentcost, probes on the
// healthcheckv2 status endpoint, resources, a non-root read-only container, the ConfigMap's
// configuration (component types, 0.0.0.0 endpoints, token files from the Secret, the policy from
// the ConfigMap, data on the PVC), and the Service.
func TestKubernetesManifests(t *testing.T) {
	ms := loadManifests(t)
	objs := objectsByKind(t, ms)
	if t.Failed() {
		t.FailNow()
	}

	var kust struct {
		Resources []string `yaml:"resources"`
	}
	objs["Kustomization"].decode(t, &kust)
	files := map[string]bool{}
	for _, m := range ms {
		files[m.file] = true
	}
	for _, r := range kust.Resources {
		if !files[r] {
			t.Errorf("kustomization.yaml lists %s, which is no manifest here", r)
		}
		delete(files, r)
	}
	delete(files, "kustomization.yaml")
	delete(files, objs["Secret"].file) // the example must not be applied as is
	for f := range files {
		t.Errorf("kustomization.yaml does not list %s", f)
	}
	if slices.Contains(kust.Resources, objs["Secret"].file) {
		t.Errorf("kustomization.yaml applies the Secret example %s with its placeholder tokens", objs["Secret"].file)
	}

	var dep deploymentSpec
	objs["Deployment"].decode(t, &dep)
	spec := dep.Spec
	if spec.Replicas == nil || *spec.Replicas != 1 {
		replicas := "unset"
		if spec.Replicas != nil {
			replicas = strconv.Itoa(*spec.Replicas)
		}
		t.Errorf("Deployment replicas %s, want 1 (the embedded ledger is one process's file)", replicas)
	}
	if spec.Strategy.Type != "Recreate" {
		t.Errorf("Deployment strategy %q, want Recreate (a rolling update would start a second pod on the ledger)", spec.Strategy.Type)
	}
	for k, v := range spec.Selector.MatchLabels {
		if spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels %v", k, v, spec.Template.Metadata.Labels)
		}
	}
	pod := spec.Template.Spec
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 10001 || sc.FSGroup == nil {
		t.Errorf("pod securityContext: want runAsNonRoot, runAsUser 10001 (the image's user) and an fsGroup for the volumes")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	csc := c.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("container securityContext.readOnlyRootFilesystem: want true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("container securityContext.allowPrivilegeEscalation: want false")
	}
	if csc.RunAsNonRoot == nil || !*csc.RunAsNonRoot {
		t.Error("container securityContext.runAsNonRoot: want true")
	}
	if !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("container capabilities.drop %v: want ALL", csc.Capabilities.Drop)
	}
	for _, res := range []string{"cpu", "memory"} {
		if c.Resources.Requests[res] == "" || c.Resources.Limits[res] == "" {
			t.Errorf("container resources: want requests and limits of %s", res)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("memory_limiter's limit_percentage needs a memory limit")
	}

	// Volumes: container path -> what backs it.
	vols := map[string]volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	var configMount, secretMount, dataMount string
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			t.Errorf("volumeMount %s: no such volume", vm.Name)
			continue
		}
		switch {
		case v.ConfigMap != nil:
			configMount = vm.MountPath
			if v.ConfigMap.Name != objs["ConfigMap"].Metadata.Name {
				t.Errorf("volume %s: ConfigMap %q, want %q", v.Name, v.ConfigMap.Name, objs["ConfigMap"].Metadata.Name)
			}
		case v.Secret != nil:
			secretMount = vm.MountPath
			if v.Secret.SecretName != objs["Secret"].Metadata.Name {
				t.Errorf("volume %s: Secret %q, want %q", v.Name, v.Secret.SecretName, objs["Secret"].Metadata.Name)
			}
			// Kubernetes' default mode 0644 is readable too; a stricter mode must leave the group
			// (fsGroup) or others able to read.
			if m := v.Secret.DefaultMode; m != nil && *m&0o044 == 0 {
				t.Errorf("volume %s: defaultMode %#o leaves the token files unreadable for uid 10001", v.Name, *m)
			}
		case v.PersistentVolumeClaim != nil:
			dataMount = vm.MountPath
			if vm.ReadOnly {
				t.Errorf("volumeMount %s: the data volume must be writable", vm.Name)
			}
			if v.PersistentVolumeClaim.ClaimName != objs["PersistentVolumeClaim"].Metadata.Name {
				t.Errorf("volume %s: claim %q, want %q", v.Name, v.PersistentVolumeClaim.ClaimName, objs["PersistentVolumeClaim"].Metadata.Name)
			}
		}
	}
	if dataMount != "/var/lib/agentcost" {
		t.Errorf("PVC mounted at %q, want /var/lib/agentcost", dataMount)
	}
	if configMount == "" || secretMount == "" {
		t.Fatalf("want the ConfigMap and the Secret mounted (config %q, secret %q)", configMount, secretMount)
	}
	var pvc struct {
		Spec struct {
			AccessModes []string `yaml:"accessModes"`
		} `yaml:"spec"`
	}
	objs["PersistentVolumeClaim"].decode(t, &pvc)
	if !slices.Contains(pvc.Spec.AccessModes, "ReadWriteOnce") {
		t.Errorf("PVC accessModes %v, want ReadWriteOnce", pvc.Spec.AccessModes)
	}

	// The configuration, and the files it names.
	var cm, secret dataObject
	objs["ConfigMap"].decode(t, &cm)
	objs["Secret"].decode(t, &secret)
	configPath := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			configPath = v
		}
	}
	if configPath != path.Join(configMount, "config.yaml") || cm.Data["config.yaml"] == "" {
		t.Fatalf("--config=%q: want %s/config.yaml from the ConfigMap's config.yaml key", configPath, configMount)
	}
	facts := checkContainerConfig(t, "ConfigMap config.yaml", []byte(cm.Data["config.yaml"]))
	if facts.policyFile != path.Join(configMount, "policy.yaml") || cm.Data["policy.yaml"] == "" {
		t.Errorf("policy_file %q: want %s/policy.yaml from the ConfigMap's policy.yaml key", facts.policyFile, configMount)
	}
	if _, err := policy.Parse("ConfigMap policy.yaml", []byte(cm.Data["policy.yaml"])); err != nil {
		t.Errorf("ConfigMap policy.yaml: %v", err)
	}
	for key, v := range secret.StringData {
		if !strings.Contains(v, "REPLACE-ME") {
			t.Errorf("Secret example key %s: want a REPLACE-ME placeholder, never a real token", key)
		}
	}
	for _, f := range facts.tokenFiles {
		if path.Dir(f) != secretMount || secret.StringData[path.Base(f)] == "" && secret.Data[path.Base(f)] == "" {
			t.Errorf("token_file %s: want a key of Secret %s mounted at %s", f, objs["Secret"].Metadata.Name, secretMount)
		}
	}
	for _, dir := range facts.dataDirs {
		if !under(dir, dataMount) {
			t.Errorf("data directory %s is not on the PVC (%s)", dir, dataMount)
		}
	}

	// Ports and probes agree with the configuration.
	portByName := map[string]int{}
	containerPorts := map[int]string{}
	for _, p := range c.Ports {
		portByName[p.Name] = p.ContainerPort
		containerPorts[p.ContainerPort] = p.Name
	}
	if got, want := sortedPorts(containerPorts), sortedPorts(facts.ports); !slices.Equal(got, want) {
		t.Errorf("container ports %v, want the configuration's ports %s", got, describePorts(facts.ports))
	}
	resolve := func(port string) int {
		if n, err := strconv.Atoi(port); err == nil {
			return n
		}
		return portByName[port]
	}
	for name, p := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", name)
			continue
		}
		if resolve(p.HTTPGet.Port) != exposedPorts["healthcheckv2"] || p.HTTPGet.Path != facts.healthPath {
			t.Errorf("%s: GET :%s%s, want :%d%s (healthcheckv2)", name, p.HTTPGet.Port, p.HTTPGet.Path, exposedPorts["healthcheckv2"], facts.healthPath)
		}
	}

	var svc serviceSpec
	objs["Service"].decode(t, &svc)
	for k, v := range svc.Spec.Selector {
		if spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod labels", k, v)
		}
	}
	var served []int
	for _, p := range svc.Spec.Ports {
		target := resolve(p.TargetPort)
		if _, ok := containerPorts[target]; !ok {
			t.Errorf("Service port %s: targetPort %q is no container port", p.Name, p.TargetPort)
		}
		served = append(served, target)
	}
	sort.Ints(served)
	var want []int
	for _, p := range sortedPorts(facts.ports) {
		if p != exposedPorts["healthcheckv2"] {
			want = append(want, p)
		}
	}
	if !slices.Equal(served, want) {
		t.Errorf("Service targets %v, want %v (every endpoint but the health check, which reports internal state)", served, want)
	}
}

// TestKubernetesConfigValidate extracts the ConfigMap's config.yaml, runs the real
// `otelcol-agentcost validate` on it and starts the collector on it, with the Deployment's mounts
// populated in temporary directories: the ConfigMap's keys, the Secret example's keys, an empty
// data volume.
func TestKubernetesConfigValidate(t *testing.T) {
	objs := objectsByKind(t, loadManifests(t))
	var cm, secret dataObject
	objs["ConfigMap"].decode(t, &cm)
	objs["Secret"].decode(t, &secret)
	var dep deploymentSpec
	objs["Deployment"].decode(t, &dep)

	mounts := map[string]string{}
	vols := map[string]volume{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, vm := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		dir := t.TempDir()
		switch v := vols[vm.Name]; {
		case v.ConfigMap != nil:
			writeFiles(t, dir, cm.Data)
		case v.Secret != nil:
			writeFiles(t, dir, secret.StringData)
			writeFiles(t, dir, secret.Data) // base64 in a real Secret; the test only needs the files
		}
		mounts[vm.MountPath] = dir
	}
	if len(mounts) == 0 {
		t.Fatal("the Deployment mounts nothing")
	}
	validateInContainerLayout(t, "ConfigMap config.yaml", []byte(cm.Data["config.yaml"]), mounts)
	startInContainerLayout(t, "ConfigMap config.yaml", []byte(cm.Data["config.yaml"]), mounts)
	if _, err := os.Stat(filepath.Join(mounts["/etc/agentcost"], "policy.yaml")); err != nil {
		t.Errorf("policy.yaml not in the ConfigMap volume: %v", err)
	}
}
