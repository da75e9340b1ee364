package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/internal/config"
)

// configVariables lists every variable internal/config reads when it loads
// the file at path ("" for none): the STAGEGATE_* overrides and the
// signing-key password variables the file names. Recorded from config
// itself, so a variable added there is known here without a list to keep.
func configVariables(t *testing.T, path string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	if _, err := config.Load(path, func(k string) string { seen[k] = true; return "" }); err != nil {
		t.Fatalf("config.Load(%q): %v", path, err)
	}
	if len(seen) < 10 {
		t.Fatalf("config read only %v: the recorder is not seeing its variables", seen)
	}
	return seen
}

// loadConfig loads the file at path with env as the process environment
// and validates it, as serve would.
func loadConfig(t *testing.T, path string, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the deployment's configuration does not validate:\n%v", err)
	}
	return cfg
}

// readEnvFile parses a docker env file (KEY=VALUE lines, # comments).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			t.Fatalf("%s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		if _, dup := out[k]; dup {
			t.Fatalf("%s:%d: %s set twice", path, n, k)
		}
		out[k] = v
	}
	return out
}

// composeFile is the part of the Compose specification the checks read.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command []string `yaml:"command"`
		EnvFile []struct {
			Path     string `yaml:"path"`
			Required *bool  `yaml:"required"`
		} `yaml:"env_file"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestCompose checks deploy/compose.yaml against the Dockerfile, the config
// package and its own env files: stagegate is built from this repository,
// publishes the CMD's port, mounts the image's volume, sets only variables
// config reads, and its credentials agree with MinIO's and PostgreSQL's.
// Buckets are stagegate's to create: no other service touches MinIO.
func TestCompose(t *testing.T) {
	var cf composeFile
	decodeStrict(t, "compose.yaml", &cf)
	sg, ok := cf.Services["stagegate"]
	if !ok {
		t.Fatal("compose.yaml has no stagegate service")
	}
	minio, okM := cf.Services["minio"]
	pg, okP := cf.Services["postgres"]
	if !okM || !okP || len(cf.Services) != 3 {
		t.Fatalf("want services stagegate, minio and postgres, got %v", maps(cf.Services))
	}

	// Built from the repository's Dockerfile, published on the CMD's port,
	// the CMD's data dir on a named volume.
	if sg.Build == nil || filepath.Clean(sg.Build.Context) != ".." || sg.Build.Dockerfile != "Dockerfile" {
		t.Errorf("stagegate build %+v, want context .. and the top-level Dockerfile", sg.Build)
	}
	_, stages := dockerfile(t)
	ic := finalCommand(t, stages[len(stages)-1])
	_, port, _ := net.SplitHostPort(ic.addr)
	if len(sg.Ports) != 1 || !strings.HasSuffix(sg.Ports[0], ":"+port) {
		t.Errorf("stagegate ports %v, want one mapping to the image's port %s", sg.Ports, port)
	}
	if !hasVolume(sg.Volumes, ic.dataDir, cf.Volumes) {
		t.Errorf("stagegate volumes %v: want a named volume on the image's %s", sg.Volumes, ic.dataDir)
	}
	for _, dep := range []string{"minio", "postgres"} {
		if sg.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("stagegate should wait for %s to be healthy", dep)
		}
		if cf.Services[dep].Healthcheck == nil {
			t.Errorf("%s has no healthcheck to wait for", dep)
		}
	}

	// Secrets come from env files only: each has a committed example with
	// every name; inline environment holds no credential.
	envOf := func(svc string) map[string]string {
		s := cf.Services[svc]
		if len(s.EnvFile) == 0 {
			t.Fatalf("%s reads no env file: its secrets belong in one", svc)
		}
		env := map[string]string{}
		for _, ef := range s.EnvFile {
			if ef.Required == nil || !*ef.Required {
				t.Errorf("%s: env_file %s should be required, so a missing secret stops start-up", svc, ef.Path)
			}
			for k, v := range readEnvFile(t, ef.Path+".example") {
				env[k] = v
			}
		}
		for k, v := range s.Environment {
			if isSecretName(k) {
				t.Errorf("%s sets %s inline; secrets belong in its env file", svc, k)
			}
			env[k] = v
		}
		return env
	}
	sgEnv, minioEnv, pgEnv := envOf("stagegate"), envOf("minio"), envOf("postgres")

	known := configVariables(t, "")
	for k := range sgEnv {
		if !known[k] {
			t.Errorf("stagegate sets %s, which internal/config does not read", k)
		}
	}
	cfg := loadConfig(t, "", sgEnv)
	if cfg.Storage.Driver != "minio" || cfg.Database.Driver != "postgres" {
		t.Fatalf("stagegate runs on %s + %s, want minio + postgres", cfg.Storage.Driver, cfg.Database.Driver)
	}

	// MinIO: the endpoint is the minio service on its API port, with its
	// root credentials.
	host, mport, err := net.SplitHostPort(cfg.Storage.MinIO.Endpoint)
	if err != nil || host != "minio" {
		t.Errorf("MinIO endpoint %q, want the minio service", cfg.Storage.MinIO.Endpoint)
	}
	if want := minioAPIPort(minio.Command); mport != want {
		t.Errorf("MinIO endpoint port %s, but the minio service listens on %s", mport, want)
	}
	if cfg.Storage.MinIO.AccessKey != minioEnv["MINIO_ROOT_USER"] || cfg.Storage.MinIO.SecretKey != minioEnv["MINIO_ROOT_PASSWORD"] {
		t.Error("STAGEGATE_MINIO_ACCESS_KEY/_SECRET_KEY differ from minio's MINIO_ROOT_USER/_PASSWORD")
	}

	// PostgreSQL: the DSN names the postgres service, its user, password
	// and database.
	dsn, err := url.Parse(cfg.Database.DSN)
	if err != nil {
		t.Fatalf("database DSN: %v", err)
	}
	pw, _ := dsn.User.Password()
	if dsn.Hostname() != "postgres" || (dsn.Port() != "" && dsn.Port() != "5432") {
		t.Errorf("DSN host %s, want the postgres service on 5432", dsn.Host)
	}
	if dsn.User.Username() != pgEnv["POSTGRES_USER"] || pw != pgEnv["POSTGRES_PASSWORD"] || strings.TrimPrefix(dsn.Path, "/") != pgEnv["POSTGRES_DB"] {
		t.Error("STAGEGATE_DATABASE_DSN's user, password or database differs from postgres.env's")
	}
	if _, ok := sgEnv[config.DefaultPasswordEnv]; !ok {
		t.Errorf("stagegate.env sets no %s: the generated signing keys would get a password written to the volume", config.DefaultPasswordEnv)
	}
	if pg.Image == "" || minio.Image == "" {
		t.Error("minio and postgres need images")
	}

	// stagegate creates its buckets itself (storage.minio.bucket_prefix):
	// no service may create them with mc.
	for name, svc := range cf.Services {
		all := svc.Image + " " + strings.Join(svc.Command, " ")
		if strings.Contains(all, "minio/mc") || strings.Contains(all, " mb ") {
			t.Errorf("service %s creates buckets; stagegate creates its own", name)
		}
	}
}

func maps[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// hasVolume reports whether volumes mounts a named volume (declared in
// named) on target.
func hasVolume(volumes []string, target string, named map[string]any) bool {
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			_, ok := named[parts[0]]
			return ok
		}
	}
	return false
}

func minioAPIPort(command []string) string {
	for i, a := range command {
		if a == "--address" && i+1 < len(command) {
			_, p, _ := net.SplitHostPort(command[i+1])
			return p
		}
	}
	return "9000"
}

// isSecretName reports whether a variable holds a credential.
func isSecretName(k string) bool {
	for _, s := range []string{"SECRET", "PASSWORD", "DSN", "ACCESS_KEY", "TOKEN", "ROOT_USER"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// k8sObject is the part of a Kubernetes object the checks read; spec stays
// a node and is decoded per kind.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Resources  []string          `yaml:"resources"`
}

func readObjects(t *testing.T, path string) []k8sObject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind == "" || o.APIVersion == "" {
			t.Fatalf("%s: an object without kind or apiVersion", path)
		}
		out = append(out, o)
	}
	return out
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type deploymentSpec struct {
	Replicas int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			SecurityContext struct {
				RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				RunAsUser    *int  `yaml:"runAsUser"`
			} `yaml:"securityContext"`
			Containers []struct {
				Name  string   `yaml:"name"`
				Image string   `yaml:"image"`
				Args  []string `yaml:"args"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				} `yaml:"ports"`
				Env             []envVar `yaml:"env"`
				ReadinessProbe  *probe   `yaml:"readinessProbe"`
				LivenessProbe   *probe   `yaml:"livenessProbe"`
				SecurityContext struct {
					AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
					ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
				} `yaml:"securityContext"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
			Volumes []struct {
				Name      string `yaml:"name"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
				Secret *struct {
					SecretName string `yaml:"secretName"`
					Items      []struct {
						Key  string `yaml:"key"`
						Path string `yaml:"path"`
					} `yaml:"items"`
				} `yaml:"secret"`
				EmptyDir any `yaml:"emptyDir"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int `yaml:"port"`
		TargetPort any `yaml:"targetPort"`
	} `yaml:"ports"`
}

type pdbSpec struct {
	MinAvailable   *int `yaml:"minAvailable"`
	MaxUnavailable *int `yaml:"maxUnavailable"`
	Selector       struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
}

func decodeSpec(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

// selects reports whether selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetes checks deploy/kubernetes: the kustomization lists every
// manifest but the secrets example; the Deployment runs 2+ non-root
// replicas with the image's port and data dir, probes /readyz and
// /healthz, and takes MinIO, PostgreSQL and signing-key secrets from Secret
// keys the example declares; its config file, loaded with those
// variables, validates and points at the mounted signing keys; the Service
// and PodDisruptionBudget select its pods.
func TestKubernetes(t *testing.T) {
	dir := "kubernetes"
	var kust k8sObject
	decodeStrict(t, filepath.Join(dir, "kustomization.yaml"), &kust)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		listed := slices.Contains(kust.Resources, base)
		switch {
		case base == "kustomization.yaml":
		case base == "secrets.example.yaml" && listed:
			t.Error("kustomization.yaml lists secrets.example.yaml: applying it would overwrite real secrets with placeholders")
		case base != "secrets.example.yaml" && !listed:
			t.Errorf("%s is not in kustomization.yaml's resources", base)
		}
	}
	objects := map[string]k8sObject{} // by kind/name
	for _, r := range append(slices.Clone(kust.Resources), "secrets.example.yaml") {
		for _, o := range readObjects(t, filepath.Join(dir, r)) {
			objects[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	byKind := func(kind string) []k8sObject {
		var out []k8sObject
		for _, o := range objects {
			if o.Kind == kind {
				out = append(out, o)
			}
		}
		return out
	}
	deployments := byKind("Deployment")
	if len(deployments) != 1 {
		t.Fatalf("want one Deployment, got %d", len(deployments))
	}
	var d deploymentSpec
	decodeSpec(t, deployments[0], &d)
	pod := d.Template.Spec
	if d.Replicas < 2 {
		t.Errorf("replicas %d, want 2 or more", d.Replicas)
	}
	if !selects(d.Selector.MatchLabels, d.Template.Metadata.Labels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Selector.MatchLabels, d.Template.Metadata.Labels)
	}
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Error("the pod must set runAsNonRoot and a non-zero runAsUser")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation || !c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the container should forbid privilege escalation and run on a read-only root filesystem")
	}

	// The command is the image's: serve on the image's port, its data dir.
	_, stages := dockerfile(t)
	ic := finalCommand(t, stages[len(stages)-1])
	_, imagePort, _ := net.SplitHostPort(ic.addr)
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container args %q, want serve …", c.Args)
	}
	if got := flagValue(t, c.Args, "--addr"); got != ic.addr {
		t.Errorf("--addr %s, want the image's %s", got, ic.addr)
	}
	if got := flagValue(t, c.Args, "--data-dir"); got != ic.dataDir {
		t.Errorf("--data-dir %s, want the image's %s", got, ic.dataDir)
	}
	portNames := map[string]int{}
	for _, p := range c.Ports {
		portNames[p.Name] = p.ContainerPort
	}
	if strconv.Itoa(portNames["http"]) != imagePort {
		t.Errorf("container port http = %d, want the image's %s", portNames["http"], imagePort)
	}
	resolvePort := func(p any) string {
		switch v := p.(type) {
		case string:
			if n, ok := portNames[v]; ok {
				return strconv.Itoa(n)
			}
			return v
		case int:
			return strconv.Itoa(v)
		}
		return ""
	}
	for _, pr := range []struct {
		name, path string
		p          *probe
	}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
		if pr.p == nil || pr.p.HTTPGet == nil || pr.p.HTTPGet.Path != pr.path || resolvePort(pr.p.HTTPGet.Port) != imagePort {
			t.Errorf("%s probe %+v, want GET %s on port %s", pr.name, pr.p, pr.path, imagePort)
		}
	}
	if a := d.Template.Metadata.Annotations; a["prometheus.io/port"] != imagePort || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want /metrics on %s", a, imagePort)
	}

	// Mounts: each names a volume; the data dir and the config are there.
	volumes := map[string]int{}
	for i, v := range pod.Volumes {
		volumes[v.Name] = i
	}
	mounts := map[string]string{} // mount path → volume
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("volume mount %s names no volume", m.Name)
		}
		mounts[m.MountPath] = m.Name
	}
	if _, ok := mounts[ic.dataDir]; !ok {
		t.Errorf("nothing is mounted on the data dir %s; with a read-only root it must be a volume", ic.dataDir)
	}
	configPath := flagValue(t, c.Args, "--config")
	cfgVolume, ok := mounts[filepath.Dir(configPath)]
	if !ok || pod.Volumes[volumes[cfgVolume]].ConfigMap == nil {
		t.Fatalf("--config %s is not in a mounted ConfigMap", configPath)
	}
	cm, ok := objects["ConfigMap/"+pod.Volumes[volumes[cfgVolume]].ConfigMap.Name]
	if !ok {
		t.Fatalf("ConfigMap %s is not defined", pod.Volumes[volumes[cfgVolume]].ConfigMap.Name)
	}
	configText, ok := cm.Data[filepath.Base(configPath)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Metadata.Name, filepath.Base(configPath))
	}
	configFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configFile, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}

	// Secrets: every secretKeyRef names a key of a declared Secret; every
	// variable is one config reads.
	secrets := map[string]map[string]string{}
	for _, s := range byKind("Secret") {
		secrets[s.Metadata.Name] = map[string]string{}
		for k, v := range s.StringData {
			secrets[s.Metadata.Name][k] = v
		}
		for k := range s.Data {
			secrets[s.Metadata.Name][k] = "data"
		}
	}
	known := configVariables(t, configFile)
	env := map[string]string{}
	secretVars := map[string]string{} // variable → secret name
	for _, e := range c.Env {
		if !known[e.Name] {
			t.Errorf("env %s is not a variable internal/config reads with this config", e.Name)
		}
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secrets[ref.Name][ref.Key]
			if !ok {
				t.Errorf("env %s reads key %q of Secret %s, which secrets.example.yaml does not declare", e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
			secretVars[e.Name] = ref.Name
		case isSecretName(e.Name):
			t.Errorf("env %s is a credential set inline; take it from a Secret", e.Name)
		default:
			env[e.Name] = e.Value
		}
	}
	for _, v := range []string{"STAGEGATE_MINIO_ACCESS_KEY", "STAGEGATE_MINIO_SECRET_KEY", "STAGEGATE_DATABASE_DSN"} {
		if secretVars[v] == "" {
			t.Errorf("%s does not come from a Secret", v)
		}
	}
	cfg := loadConfig(t, configFile, env)
	if cfg.Storage.Driver != "minio" || cfg.Database.Driver != "postgres" {
		t.Errorf("replicas share state only on minio + postgres, got %s + %s", cfg.Storage.Driver, cfg.Database.Driver)
	}
	// Every replica must sign with the same keys: each environment's key
	// is a file of a mounted Secret, its password a Secret's key too.
	for _, e := range cfg.Environments {
		if e.Signing.Key == "" {
			t.Errorf("environment %s has no signing.key: each replica would generate its own", e.Name)
			continue
		}
		vol, ok := mounts[filepath.Dir(e.Signing.Key)]
		sec := pod.Volumes[volumes[vol]].Secret
		if !ok || sec == nil {
			t.Errorf("environment %s's key %s is not in a mounted Secret", e.Name, e.Signing.Key)
			continue
		}
		found := false
		for _, it := range sec.Items {
			if it.Path == filepath.Base(e.Signing.Key) {
				found = true
				if _, ok := secrets[sec.SecretName][it.Key]; !ok {
					t.Errorf("Secret %s has no key %s for %s", sec.SecretName, it.Key, e.Signing.Key)
				}
			}
		}
		if !found {
			t.Errorf("Secret volume %s does not project %s", vol, filepath.Base(e.Signing.Key))
		}
		pwVar := e.Signing.PasswordEnv
		if pwVar == "" {
			pwVar = config.DefaultPasswordEnv
		}
		if secretVars[pwVar] == "" {
			t.Errorf("environment %s's key password $%s does not come from a Secret", e.Name, pwVar)
		}
	}

	// Service and PodDisruptionBudget select the pods.
	services := byKind("Service")
	if len(services) != 1 {
		t.Fatalf("want one Service, got %d", len(services))
	}
	var svc serviceSpec
	decodeSpec(t, services[0], &svc)
	if !selects(svc.Selector, d.Template.Metadata.Labels) {
		t.Errorf("the Service selects %v, not the pods %v", svc.Selector, d.Template.Metadata.Labels)
	}
	if len(svc.Ports) == 0 || resolvePort(svc.Ports[0].TargetPort) != imagePort {
		t.Errorf("the Service's target port %v is not the container's %s", svc.Ports, imagePort)
	}
	pdbs := byKind("PodDisruptionBudget")
	if len(pdbs) != 1 {
		t.Fatalf("want one PodDisruptionBudget, got %d", len(pdbs))
	}
	var pdb pdbSpec
	decodeSpec(t, pdbs[0], &pdb)
	if !selects(pdb.Selector.MatchLabels, d.Template.Metadata.Labels) {
		t.Errorf("the PodDisruptionBudget selects %v, not the pods", pdb.Selector.MatchLabels)
	}
	if pdb.MinAvailable == nil || *pdb.MinAvailable < 1 || *pdb.MinAvailable >= d.Replicas {
		t.Errorf("PodDisruptionBudget minAvailable %v: want at least 1 and fewer than the %d replicas, so drains can proceed", pdb.MinAvailable, d.Replicas)
	}
}
