// Package helm holds the pinned helm (go tool helm, see go.mod) and the
// test of charts/ecrgate: it renders the chart with each value set in
// charts/ecrgate/ci, decodes every rendered manifest strictly into the
// k8s.io/api type of its kind (a field the API does not know fails), and
// checks what the chart promises: two non-root replicas on a read-only root
// filesystem, probes on /healthz, a config.yaml that says what the values
// say and that `ecrgate config check` accepts from a ConfigMap-style mount.
//
// It is its own module so that helm's and Kubernetes' dependencies stay out
// of ecrgate's go.mod. `make chart-test` runs it with HELM set to the helm
// that `make helm` built; without HELM it builds helm itself.
package helm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../../charts/ecrgate"
	namespace = "registry"
	release   = "ecrgate"
	nonroot   = 65532
)

// Certificate is the part of cert-manager.io/v1 Certificate the chart
// writes; decoding is strict, so a field the chart adds must be added here
// (from cert-manager's CRD) too.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName string `json:"secretName"`
		IssuerRef  struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
		DNSNames    []string `json:"dnsNames"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		Usages      []string `json:"usages"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
	} `json:"spec"`
}

// ServiceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// chart writes, from the Prometheus Operator's CRD.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is one `helm template`, every object decoded.
type rendered struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMap      *corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	networkPolicy  *networkingv1.NetworkPolicy
	certificate    *Certificate
	serviceMonitor *ServiceMonitor
}

// kinds maps apiVersion/kind to a new value of its Go type.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"cert-manager.io/v1/Certificate":          func() any { return new(Certificate) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(ServiceMonitor) },
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode splits helm's output into documents and decodes each strictly:
// duplicate keys (YAMLToJSONStrict) and fields its type lacks
// (DisallowUnknownFields) are errors. Every object must be of a known kind,
// with a valid name and labels, in the release's namespace, and at most one
// of each kind.
func decode(t *testing.T, out []byte) *rendered {
	t.Helper()
	r := &rendered{}
	for i, doc := range docSep.Split(string(out), -1) {
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		if string(js) == "null" {
			continue // comments only, or empty
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		key := tm.APIVersion + "/" + tm.Kind
		mk, ok := kinds[key]
		if !ok {
			t.Fatalf("document %d: unexpected %s\n%s", i, key, doc)
		}
		obj := mk()
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			t.Fatalf("%s: strict decode: %v\n%s", key, err, doc)
		}
		meta := reflect.ValueOf(obj).Elem().FieldByName("ObjectMeta").Interface().(metav1.ObjectMeta)
		checkMeta(t, key, meta)
		slot := map[string]any{
			"apps/v1/Deployment": &r.deployment, "v1/Service": &r.service, "v1/ConfigMap": &r.configMap,
			"v1/ServiceAccount": &r.serviceAccount, "policy/v1/PodDisruptionBudget": &r.pdb,
			"networking.k8s.io/v1/NetworkPolicy": &r.networkPolicy, "cert-manager.io/v1/Certificate": &r.certificate,
			"monitoring.coreos.com/v1/ServiceMonitor": &r.serviceMonitor,
		}[key]
		p := reflect.ValueOf(slot).Elem()
		if !p.IsNil() {
			t.Fatalf("two objects of kind %s", key)
		}
		p.Set(reflect.ValueOf(obj))
	}
	return r
}

func checkMeta(t *testing.T, key string, m metav1.ObjectMeta) {
	t.Helper()
	for _, e := range validation.IsDNS1123Subdomain(m.Name) {
		t.Errorf("%s name %q: %s", key, m.Name, e)
	}
	if m.Namespace != namespace {
		t.Errorf("%s %s: namespace %q, want %q", key, m.Name, m.Namespace, namespace)
	}
	checkLabels(t, key+" "+m.Name, m.Labels)
	for k := range m.Annotations {
		for _, e := range validation.IsQualifiedName(k) {
			t.Errorf("%s %s: annotation %q: %s", key, m.Name, k, e)
		}
	}
}

func checkLabels(t *testing.T, what string, labels map[string]string) {
	t.Helper()
	for k, v := range labels {
		for _, e := range validation.IsQualifiedName(k) {
			t.Errorf("%s: label %q: %s", what, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: label %s=%q: %s", what, k, v, e)
		}
	}
}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBin is $HELM, else the module's pinned helm built into a temporary
// directory (from the build cache after the first time).
func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	helmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ecrgate-helm-")
		if err != nil {
			helmErr = err
			return
		}
		helmPath = filepath.Join(dir, "helm")
		out, err := exec.Command("go", "build", "-o", helmPath, "helm.sh/helm/v4/cmd/helm").CombinedOutput()
		if err != nil {
			helmErr = fmt.Errorf("build helm: %v\n%s", err, out)
		}
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

// helm runs helm with args and an empty, private helm home.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func template(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// valueSets are the files in charts/ecrgate/ci, each a scenario.
func valueSets(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("value sets in %s/ci: %v %v", chartDir, files, err)
	}
	return files
}

// values reads the chart's defaults with the value set's file over them,
// maps merged key by key as helm merges them.
func values(t *testing.T, file string) map[string]any {
	t.Helper()
	var def, over map[string]any
	for p, v := range map[string]*map[string]any{filepath.Join(chartDir, "values.yaml"): &def, file: &over} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return merge(def, over)
}

func merge(dst, src map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = merge(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func get(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func str(m map[string]any, path string) string {
	s, _ := get(m, path).(string)
	return s
}

func TestChartRenders(t *testing.T) {
	for _, file := range valueSets(t) {
		t.Run(strings.TrimSuffix(filepath.Base(file), "-values.yaml"), func(t *testing.T) {
			t.Parallel()
			vals := values(t, file)
			r := decode(t, template(t, "-f", file))
			checkRendered(t, vals, r)
		})
	}
}

func checkRendered(t *testing.T, vals map[string]any, r *rendered) {
	for name, missing := range map[string]bool{
		"Deployment": r.deployment == nil, "Service": r.service == nil, "ConfigMap": r.configMap == nil,
		"ServiceAccount": r.serviceAccount == nil, "PodDisruptionBudget": r.pdb == nil, "NetworkPolicy": r.networkPolicy == nil,
	} {
		if missing {
			t.Fatalf("no %s rendered", name)
		}
	}
	d := r.deployment
	pod := d.Spec.Template.Spec
	checkLabels(t, "pod template", d.Spec.Template.Labels)

	// Replicas, spread and rollout.
	wantReplicas := int32(vals["replicaCount"].(float64))
	if d.Spec.Replicas == nil || *d.Spec.Replicas != wantReplicas {
		t.Errorf("replicas %v, want %d", d.Spec.Replicas, wantReplicas)
	}
	selects(t, "Deployment selector", d.Spec.Selector, d.Spec.Template.Labels)
	if len(pod.TopologySpreadConstraints) == 0 && pod.Affinity == nil {
		t.Error("replicas are not spread over nodes: no topologySpreadConstraints, no affinity")
	}
	for _, c := range pod.TopologySpreadConstraints {
		selects(t, "topologySpreadConstraint "+c.TopologyKey, c.LabelSelector, d.Spec.Template.Labels)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update may take a replica away before its successor is ready: %+v", d.Spec.Strategy)
	}

	// Non-root, read-only, no privileges, no API token.
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("want one container, got %d (+%d init)", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil {
		t.Fatal("no securityContext")
	}
	if !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != nonroot {
		t.Errorf("pod runs as %v (runAsNonRoot %v), want non-root %d", psc.RunAsUser, psc.RunAsNonRoot, nonroot)
	}
	if psc.FSGroup == nil || *psc.FSGroup != nonroot {
		t.Errorf("fsGroup %v, want %d (the TLS key is mode 0440)", psc.FSGroup, nonroot)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp profile %v, want RuntimeDefault", psc.SeccompProfile)
	}
	if !isTrue(csc.ReadOnlyRootFilesystem) {
		t.Error("root filesystem is not read-only")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("privilege escalation is allowed")
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Error("privileged")
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", csc.Capabilities)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a Kubernetes API token it does not need")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("host namespaces")
	}

	// Image.
	repo := str(vals, "image.repository")
	want := repo + ":0.1.0"
	switch {
	case str(vals, "image.digest") != "":
		want = repo + "@" + str(vals, "image.digest")
	case str(vals, "image.tag") != "":
		want = repo + ":" + str(vals, "image.tag")
	}
	if c.Image != want {
		t.Errorf("image %q, want %q", c.Image, want)
	}

	// Ports and probes.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["registry"] != 5000 || ports["admin"] != 5002 {
		t.Errorf("container ports %v, want registry 5000 and admin 5002", ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", name)
			continue
		}
		g := p.HTTPGet
		if g.Path != "/healthz" || portOf(g.Port, ports) != ports["admin"] || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s probe %s %s:%s, want HTTP /healthz on the admin port", name, g.Scheme, g.Path, g.Port.String())
		}
	}

	// Where ecrgate reads and writes.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("mount %s of volume %q, which the pod does not have", m.MountPath, m.Name)
		}
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath, which the kubelet never updates", m.MountPath)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	// Every place ecrgate writes (HOME and the XDG directories: token
	// cache, audit log) is on a writable emptyDir; the root filesystem is
	// read-only.
	writable := func(path string) bool {
		for mp, m := range mounts {
			if (path == mp || strings.HasPrefix(path, mp+"/")) && !m.ReadOnly && vols[m.Name].EmptyDir != nil {
				return true
			}
		}
		return false
	}
	for _, k := range []string{"HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "TMPDIR"} {
		if !writable(env[k]) {
			t.Errorf("%s=%q is not on a writable emptyDir", k, env[k])
		}
	}

	// The configuration: a ConfigMap mounted whole, read-only.
	cfgPath := env["ECRGATE_CONFIG"]
	cfgMount, ok := mounts[filepath.Dir(cfgPath)]
	if !ok || !cfgMount.ReadOnly || vols[cfgMount.Name].ConfigMap == nil || vols[cfgMount.Name].ConfigMap.Name != r.configMap.Name {
		t.Fatalf("ECRGATE_CONFIG=%q is not in a read-only mount of ConfigMap %s", cfgPath, r.configMap.Name)
	}
	cfgText, ok := r.configMap.Data[filepath.Base(cfgPath)]
	if !ok {
		t.Fatalf("ConfigMap has no %s", filepath.Base(cfgPath))
	}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(cfgText), &cfg); err != nil {
		t.Fatalf("config.yaml: %v\n%s", err, cfgText)
	}
	wantCfg := map[string]any{}
	for k, v := range vals["config"].(map[string]any) {
		if v != nil && v != "" {
			wantCfg[k] = v
		}
	}
	wantCfg["listen"] = "0.0.0.0:5000"
	wantCfg["admin_listen"] = "0.0.0.0:5002"
	wantCfg["allow_remote"] = true
	wantCfg["tls"] = map[string]any{"cert_file": "/etc/ecrgate/tls/tls.crt", "key_file": "/etc/ecrgate/tls/tls.key"}
	if !reflect.DeepEqual(cfg, wantCfg) {
		t.Errorf("config.yaml is\n%s\nwant what the values say:\n%v", cfgText, wantCfg)
	}
	files, _ := vals["configFiles"].(map[string]any)
	for name, content := range files {
		if r.configMap.Data[name] != content {
			t.Errorf("ConfigMap %s = %q, want %q", name, r.configMap.Data[name], content)
		}
	}
	if len(r.configMap.Data) != 1+len(files) {
		t.Errorf("ConfigMap keys %v, want config.yaml and configFiles", keys(r.configMap.Data))
	}
	if pod := d.Spec.Template.Annotations["checksum/config"]; len(pod) != 64 {
		t.Errorf("checksum/config annotation %q, want a sha256", pod)
	}

	// TLS: the files config.yaml names are the mounted Secret's.
	tlsMount, ok := mounts["/etc/ecrgate/tls"]
	tlsVol := vols[tlsMount.Name]
	if !ok || !tlsMount.ReadOnly || tlsVol.Secret == nil {
		t.Fatal("no read-only Secret mounted at /etc/ecrgate/tls")
	}
	wantSecret := str(vals, "tls.secretName")
	if r.certificate != nil {
		wantSecret = r.certificate.Spec.SecretName
	}
	if tlsVol.Secret.SecretName != wantSecret || wantSecret == "" {
		t.Errorf("TLS Secret %q, want %q", tlsVol.Secret.SecretName, wantSecret)
	}
	if m := tlsVol.Secret.DefaultMode; m == nil || *m != 0o440 {
		t.Errorf("TLS Secret mode %v, want 0440 (group 65532 by fsGroup)", m)
	}
	var items []string
	for _, it := range tlsVol.Secret.Items {
		items = append(items, "/etc/ecrgate/tls/"+it.Path)
	}
	for _, f := range []string{"cert_file", "key_file"} {
		if p := str(cfg, "tls."+f); !slices.Contains(items, p) {
			t.Errorf("tls.%s %q is not a file of the mounted Secret (%v)", f, p, items)
		}
	}

	// Certificate.
	if enabled, _ := get(vals, "tls.certManager.enabled").(bool); enabled != (r.certificate != nil) {
		t.Errorf("Certificate rendered: %v, want %v", r.certificate != nil, enabled)
	}
	if cert := r.certificate; cert != nil {
		svc := r.service.Name
		for _, n := range []string{svc, svc + "." + namespace, svc + "." + namespace + ".svc", svc + "." + namespace + ".svc.cluster.local"} {
			if !slices.Contains(cert.Spec.DNSNames, n) {
				t.Errorf("certificate does not cover the Service name %s: %v", n, cert.Spec.DNSNames)
			}
		}
		for _, n := range get(vals, "tls.certManager.dnsNames").([]any) {
			if !slices.Contains(cert.Spec.DNSNames, n.(string)) {
				t.Errorf("certificate does not cover %s: %v", n, cert.Spec.DNSNames)
			}
		}
		if cert.Spec.IssuerRef.Name != str(vals, "tls.certManager.issuerRef.name") || cert.Spec.IssuerRef.Kind == "" {
			t.Errorf("issuerRef %+v", cert.Spec.IssuerRef)
		}
	}

	// Service: selects the pods, and its ports reach the named container ports.
	if !labelsMatch(r.service.Spec.Selector, d.Spec.Template.Labels) || len(r.service.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods %v", r.service.Spec.Selector, d.Spec.Template.Labels)
	}
	svcPorts := map[string]corev1.ServicePort{}
	for _, p := range r.service.Spec.Ports {
		svcPorts[p.Name] = p
		if portOf(p.TargetPort, ports) == 0 {
			t.Errorf("Service port %s targets %s, which the container does not have", p.Name, p.TargetPort.String())
		}
	}
	if p := svcPorts["registry"]; p.Port != 5000 || portOf(p.TargetPort, ports) != 5000 {
		t.Errorf("Service registry port %+v", p)
	}

	// PodDisruptionBudget.
	if r.pdb.Spec.MinAvailable == nil || r.pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", r.pdb.Spec.MinAvailable)
	}
	selects(t, "PodDisruptionBudget", r.pdb.Spec.Selector, d.Spec.Template.Labels)

	// NetworkPolicy: in to the two ports, out to DNS and HTTPS.
	np := r.networkPolicy.Spec
	selects(t, "NetworkPolicy", &np.PodSelector, d.Spec.Template.Labels)
	if !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeEgress) || !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("policyTypes %v", np.PolicyTypes)
	}
	inPorts := map[int32]bool{}
	for _, rule := range np.Ingress {
		for _, p := range rule.Ports {
			inPorts[portOf(*p.Port, ports)] = true
		}
		if len(rule.Ports) == 0 {
			t.Error("an ingress rule opens every port")
		}
	}
	if !inPorts[5000] || !inPorts[5002] || len(inPorts) != 2 {
		t.Errorf("ingress ports %v, want 5000 and 5002 only", inPorts)
	}
	outPorts := map[string]bool{}
	for _, rule := range np.Egress {
		for _, p := range rule.Ports {
			outPorts[fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String())] = true
		}
	}
	for _, p := range []string{"UDP/53", "TCP/53", "TCP/443"} {
		if !outPorts[p] {
			t.Errorf("egress does not allow %s: %v", p, outPorts)
		}
	}
	if from := get(vals, "networkPolicy.registryFrom").([]any); len(np.Ingress) > 0 && len(np.Ingress[0].From) != len(from) {
		t.Errorf("registry ingress from %v, want %v", np.Ingress[0].From, from)
	}

	// ServiceAccount: the pod's, without an API token, with the IRSA role.
	if r.serviceAccount.Name != pod.ServiceAccountName {
		t.Errorf("pod uses service account %q, chart made %q", pod.ServiceAccountName, r.serviceAccount.Name)
	}
	if a := r.serviceAccount.AutomountServiceAccountToken; a == nil || *a {
		t.Error("ServiceAccount automounts an API token")
	}
	if got, want := r.serviceAccount.Annotations["eks.amazonaws.com/role-arn"], str(vals, "serviceAccount.roleArn"); got != want {
		t.Errorf("eks.amazonaws.com/role-arn %q, want %q", got, want)
	}

	// ServiceMonitor.
	if enabled, _ := get(vals, "metrics.serviceMonitor.enabled").(bool); enabled != (r.serviceMonitor != nil) {
		t.Errorf("ServiceMonitor rendered: %v, want %v", r.serviceMonitor != nil, enabled)
	}
	if sm := r.serviceMonitor; sm != nil {
		selects(t, "ServiceMonitor", &sm.Spec.Selector, r.service.Labels)
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || svcPorts[sm.Spec.Endpoints[0].Port].Port != 5002 {
			t.Errorf("ServiceMonitor endpoints %+v, want /metrics on the Service's admin port", sm.Spec.Endpoints)
		}
		for k, v := range get(vals, "metrics.serviceMonitor.labels").(map[string]any) {
			if sm.Labels[k] != v {
				t.Errorf("ServiceMonitor label %s=%q, want %q", k, sm.Labels[k], v)
			}
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// portOf resolves a port given by number or by the container port's name.
func portOf(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.Int {
		for _, n := range named {
			if n == p.IntVal {
				return n
			}
		}
		return 0
	}
	return named[p.StrVal]
}

func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selects(t *testing.T, what string, sel *metav1.LabelSelector, labels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || sel == nil || len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		t.Errorf("%s: selector %v: %v (empty selects everything)", what, sel, err)
		return
	}
	if !s.Matches(k8slabels.Set(labels)) {
		t.Errorf("%s: selector %v does not select the pods %v", what, sel, labels)
	}
}

// A change to the configuration changes the pods' checksum/config
// annotation, so helm upgrade rolls them; a change elsewhere does not.
func TestConfigChangeRollsPods(t *testing.T) {
	base := filepath.Join(chartDir, "ci", "default-values.yaml")
	annotation := func(args ...string) string {
		r := decode(t, template(t, append([]string{"-f", base}, args...)...))
		return r.deployment.Spec.Template.Annotations["checksum/config"]
	}
	a := annotation()
	if b := annotation("--set", "config.log_level=debug"); a == b {
		t.Error("changing config.log_level left checksum/config as it was")
	}
	if b := annotation("--set-string", "configFiles.extra\\.json=x"); a == b {
		t.Error("adding a configFiles entry left checksum/config as it was")
	}
	if b := annotation("--set", "resources.limits.memory=512Mi"); a != b {
		t.Error("changing resources changed checksum/config")
	}
	sum := sha256.Sum256(nil)
	if a == fmt.Sprintf("%x", sum) {
		t.Error("checksum/config is the checksum of nothing")
	}
}

// Bad values fail at `helm template` (the schema or the templates), with a
// message that names what to set.
func TestBadValuesFail(t *testing.T) {
	base := filepath.Join(chartDir, "ci", "default-values.yaml")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown top-level key", []string{"--set", "replicas=3"}, "replicas"},
		{"misspelt nested key", []string{"--set", "tls.certManger.enabled=true"}, "certManger"},
		{"zero replicas", []string{"--set", "replicaCount=0"}, "replicaCount"},
		{"chart-owned config key", []string{"--set", "config.listen=127.0.0.1:5000"}, "listen"},
		{"intercept mode", []string{"--set", "config.intercept.listen=127.0.0.1:5001"}, "intercept"},
		{"bad log_format", []string{"--set", "config.log_format=xml"}, "log_format"},
		{"writable root filesystem", []string{"--set", "securityContext.readOnlyRootFilesystem=false"}, "readOnlyRootFilesystem"},
		{"root", []string{"--set", "podSecurityContext.runAsNonRoot=false"}, "runAsNonRoot"},
		{"bad digest", []string{"--set", "image.digest=latest"}, "digest"},
		{"bad role ARN", []string{"--set", "serviceAccount.roleArn=ecrgate"}, "roleArn"},
		{"no TLS", []string{"--set", "tls.secretName="}, "tls.secretName"},
		{"both TLS sources", []string{"--set", "tls.certManager.enabled=true", "--set", "tls.certManager.issuerRef.name=ca"}, "not both"},
		{"cert-manager without issuer", []string{"--set", "tls.secretName=", "--set", "tls.certManager.enabled=true"}, "issuerRef.name"},
		{"no registry", []string{"--set", "config.default_registry="}, "default_registry"},
		{"no image", []string{"--set", "image.repository="}, "image.repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := helm(t, append([]string{"template", release, chartDir, "--namespace", namespace, "-f", base}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template %v succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestLint(t *testing.T) {
	for _, file := range valueSets(t) {
		if out, err := helm(t, "lint", "--strict", chartDir, "--namespace", namespace, "-f", file); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// ecrgate accepts the config.yaml each value set renders, read the way a
// pod reads it: from a ConfigMap volume as the kubelet lays it out
// (config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/, files
// root-owned 0644, the volume's top directory 0777), by user 65532 when
// the test runs as root, with the TLS pair in a Secret volume laid out the
// same way (files root:65532 0440, as fsGroup makes them). The check reads
// the pair, so tls.cert_file and tls.key_file are pointed at that volume
// instead of /etc/ecrgate/tls; nothing else in config.yaml changes. That
// is `ecrgate config check`, ECRGATE=path or built from the root module.
func TestConfigCheck(t *testing.T) {
	bin := ecrgateBin(t)
	certPEM, keyPEM := selfSigned(t)
	for _, file := range valueSets(t) {
		t.Run(strings.TrimSuffix(filepath.Base(file), "-values.yaml"), func(t *testing.T) {
			r := decode(t, template(t, "-f", file))
			tlsDir := kubeletVolume(t, map[string]string{"tls.crt": certPEM, "tls.key": keyPEM}, 0o440, nonroot)
			data := map[string]string{}
			for k, v := range r.configMap.Data {
				data[k] = v
			}
			data["config.yaml"] = strings.NewReplacer(
				"cert_file: /etc/ecrgate/tls/tls.crt", "cert_file: "+filepath.Join(tlsDir, "tls.crt"),
				"key_file: /etc/ecrgate/tls/tls.key", "key_file: "+filepath.Join(tlsDir, "tls.key"),
			).Replace(data["config.yaml"])
			if data["config.yaml"] == r.configMap.Data["config.yaml"] {
				t.Fatalf("config.yaml does not name /etc/ecrgate/tls/tls.crt and tls.key:\n%s", data["config.yaml"])
			}
			dir := kubeletVolume(t, data, 0o644, 0)
			out, err := configCheck(t, bin, filepath.Join(dir, "config.yaml"))
			if err != nil {
				t.Fatalf("ecrgate config check: %v\n%s", err, out)
			}
			t.Logf("%s", out)
		})
	}
}

// selfSigned returns a certificate and its key in PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ecrgate.registry.svc"},
		DNSNames:     []string{"ecrgate.registry.svc"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

var (
	ecrgateOnce sync.Once
	ecrgatePath string
	ecrgateErr  error
)

func ecrgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ECRGATE"); p != "" {
		return p
	}
	ecrgateOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ecrgate-bin-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			ecrgateErr = err
			return
		}
		ecrgatePath = filepath.Join(dir, "ecrgate")
		cmd := exec.Command("go", "build", "-o", ecrgatePath, "./cmd/proxy")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			ecrgateErr = fmt.Errorf("build ecrgate: %v\n%s", err, out)
		}
	})
	if ecrgateErr != nil {
		t.Fatal(ecrgateErr)
	}
	return ecrgatePath
}

// kubeletVolume lays data out as the kubelet's atomic writer does for a
// ConfigMap or Secret volume (each name a symbolic link through ..data to a
// timestamped directory) with files of the given mode, their group gid
// when running as root (fsGroup), and returns the volume's directory.
func kubeletVolume(t *testing.T, data map[string]string, mode os.FileMode, gid int) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "ecrgate-volume-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "volume")
	ts := filepath.Join(dir, "..2026_12_04_12_00_00.123456789")
	for _, step := range []error{
		os.Chmod(parent, 0o755),
		os.Mkdir(dir, 0o777), os.Chmod(dir, 0o777),
		os.Mkdir(ts, 0o755), os.Chmod(ts, 0o755),
		os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	for name, content := range data {
		p := filepath.Join(ts, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 && gid != 0 {
			if err := os.Chown(p, 0, gid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// configCheck runs `ecrgate config check`, as user 65532 when running as
// root (as in the pod: the files belong to root, the reader to 65532).
func configCheck(t *testing.T, bin, path string) (string, error) {
	t.Helper()
	home, err := os.MkdirTemp("", "ecrgate-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	cmd := exec.Command(bin, "config", "check", "--config", path)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	if os.Geteuid() == 0 {
		if err := os.Chmod(home, 0o777); err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot}}
	} else {
		t.Logf("not root: ecrgate reads the ConfigMap as user %d, which owns the files, not as %d reading root's", os.Geteuid(), nonroot)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The check above is the real one: the same volume whose config.yaml
// belongs to another user (not root, not 65532) is refused.
func TestConfigCheckRefusesAnotherUsersFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to chown the file to another user and run ecrgate as 65532")
	}
	bin := ecrgateBin(t)
	r := decode(t, template(t, "-f", filepath.Join(chartDir, "ci", "default-values.yaml")))
	dir := kubeletVolume(t, map[string]string{"config.yaml": r.configMap.Data["config.yaml"]}, 0o644, 0)
	real, err := filepath.EvalSymlinks(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(real, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	out, err := configCheck(t, bin, filepath.Join(dir, "config.yaml"))
	if err == nil || !strings.Contains(out, "belongs to user id 1000") {
		t.Fatalf("ecrgate config check accepted another user's file (%v):\n%s", err, out)
	}
}
