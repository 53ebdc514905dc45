package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/boomerang-dev/boomerang/config"
	"github.com/boomerang-dev/boomerang/redistest"
)

// The deploy files (Dockerfile, deploy/compose.yaml and what it mounts,
// deploy/kubernetes/*.yaml) are checked against the binary itself: every
// process they describe is started through run() with the environment they
// give it (addresses moved to free loopback ports, secrets replaced), and
// every probe is asked of the real listeners: a Kubernetes probe by GETting
// its path on its port, a compose service's HEALTHCHECK by running
// `boomerang healthcheck` with the container's environment. Every port a
// manifest names (containerPort, a Service's targetPort, nginx's upstreams,
// Prometheus's targets, EXPOSE) must be one that environment makes the
// binary listen on; every BOOMERANG_* variable must be in config.Vars;
// every image is pinned by a tag.

// deployFiles are the files checked, by their path from the repository's root.
var deployFiles = []string{"Dockerfile", "deploy/compose.yaml", "deploy/.env.example", "deploy/nginx.conf", "deploy/prometheus.yml"}

// pendingVars are variables the manifests set that another part of issue
// 11 adds to config.Vars. Until it does, they are tolerated and their
// listener is not dialled; once in config.Vars they are checked like any.
var pendingVars = map[string]string{
	"BOOMERANG_METRICS_ADDR": "the metrics listener (issue 11, section 1)",
}

// secretVars must come from a secret: a compose ${…} reference, a
// Kubernetes secretKeyRef; never a value in the file.
var secretVars = []string{"BOOMERANG_ADMIN_TOKEN", "BOOMERANG_REDIS_URL", "REDIS_PASSWORD", "REDISCLI_AUTH"}

func readDeployFiles(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..")
	paths := slices.Clone(deployFiles)
	manifests, err := filepath.Glob(filepath.Join(root, "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(manifests) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	for _, m := range manifests {
		rel, _ := filepath.Rel(root, m)
		paths = append(paths, filepath.ToSlash(rel))
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		files[p] = string(b)
	}
	return files
}

// TestDeployManifests checks the deploy files as committed, then shows
// that the checks fail for each kind of broken file.
func TestDeployManifests(t *testing.T) {
	files := readDeployFiles(t)
	for name, why := range pendingVars {
		if !slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == name }) {
			t.Logf("%s is not in config.Vars yet (%s): tolerated, its listener not dialled", name, why)
		}
	}
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(otlp.Close)
	d := &deployChecker{t: t, redisURL: redistest.URL(t), otlpURL: otlp.URL, runs: map[string][]string{}}

	t.Run("as committed", func(t *testing.T) {
		d.t = t
		for _, p := range d.problems(files) {
			t.Error(p)
		}
	})

	broken := []struct {
		name, file, old, new string
		want                 string // a problem must contain this
	}{
		{"readiness probe on a route the binary lacks", "deploy/kubernetes/worker.yaml", "path: /readyz", "path: /ready", "GET /ready answered 404"},
		{"liveness probe on a port the container lacks", "deploy/kubernetes/api.yaml", "path: /healthz\n              port: http", "path: /healthz\n              port: 8082", "port 8082"},
		{"containerPort no listener has", "deploy/kubernetes/api.yaml", "containerPort: 8081", "containerPort: 8082", "containerPort 8082"},
		{"worker's health listener moved away from its probes", "deploy/kubernetes/worker.yaml", "value: \":8081\"", "value: \":8082\"", "containerPort 8081"},
		{"worker Deployment running the API role", "deploy/kubernetes/worker.yaml", "value: worker", "value: api", "BOOMERANG_ADMIN_TOKEN"},
		{"Service targetPort no container has", "deploy/kubernetes/api.yaml", "targetPort: admin", "targetPort: adm", "targetPort adm"},
		{"PodDisruptionBudget selecting nothing", "deploy/kubernetes/worker.yaml", "maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: boomerang\n      app.kubernetes.io/component: worker", "maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: boomerang\n      app.kubernetes.io/component: workers", "PodDisruptionBudget"},
		{"writable root filesystem", "deploy/kubernetes/worker.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"image without a tag", "deploy/kubernetes/api.yaml", "registry.example.com/boomerang:0.1.0", "registry.example.com/boomerang", "not pinned"},
		{"image on latest", "deploy/compose.yaml", "nginx:1.27.3-alpine", "nginx:latest", "not pinned"},
		{"variable Boomerang does not read", "deploy/compose.yaml", "BOOMERANG_ADDR: \":8080\"", "BOOMERANG_LISTEN_ADDR: \":8080\"", "BOOMERANG_LISTEN_ADDR is not in config.Vars"},
		{"Redis fsyncing every second", "deploy/compose.yaml", "--appendfsync always", "--appendfsync everysec", "appendfsync always"},
		{"admin token written in the file", "deploy/compose.yaml", "${BOOMERANG_ADMIN_TOKEN:?set BOOMERANG_ADMIN_TOKEN in deploy/.env (openssl rand -hex 32)}", "0123456789abcdef0123456789abcdef", "BOOMERANG_ADMIN_TOKEN"},
		{"nginx upstream on no listener", "deploy/nginx.conf", "server api-1:8080", "server api-1:8090", "api-1:8090"},
		{"Prometheus scraping the worker's missing API port", "deploy/prometheus.yml", "\"worker-1:9090\"", "\"worker-1:8080\"", "worker-1:8080"},
		{"compose worker without a health listener", "deploy/compose.yaml", "BOOMERANG_ROLE: worker\n", "BOOMERANG_ROLE: worker\n      BOOMERANG_ADMIN_ADDR: \"\"\n", "HEALTHCHECK (boomerang healthcheck) fails"},
		{"image without a HEALTHCHECK", "Dockerfile", "HEALTHCHECK", "# HEALTHCHECK", "HEALTHCHECK"},
		{"pods killed before their shutdown timeout", "deploy/kubernetes/worker.yaml", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 20", "terminationGracePeriodSeconds is 20s"},
		{"compose default grace period", "deploy/compose.yaml", "stop_grace_period: 40s", "", "stop_grace_period is 10s"},
	}
	for _, b := range broken {
		t.Run("broken: "+b.name, func(t *testing.T) {
			d.t = t
			text, ok := files[b.file]
			if !ok || !strings.Contains(text, b.old) {
				t.Fatalf("%s does not contain %q: the row no longer breaks anything", b.file, b.old)
			}
			mutated := maps(files)
			mutated[b.file] = strings.Replace(text, b.old, b.new, 1)
			problems := d.problems(mutated)
			for _, p := range problems {
				if strings.Contains(p, b.want) {
					return
				}
			}
			t.Errorf("%s: %q → %q: no problem names %q; got %d:\n%s", b.file, b.old, b.new, b.want, len(problems), strings.Join(problems, "\n"))
		})
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// workload is one process a deploy file describes.
type workload struct {
	where     string            // file and object, for messages
	env       map[string]string // the process's environment; "" for a secret reference
	ports     map[int]string    // ports others reach it on → who names them
	probes    []deployProbe
	healthcmd bool // the image's HEALTHCHECK (boomerang healthcheck) runs in it
}

type deployProbe struct {
	kind, path string
	port       int
}

// deployChecker runs the checks; runs caches the result of starting a
// process, by its environment and probes, so that a broken file starts
// only the processes it changes.
type deployChecker struct {
	t        *testing.T
	redisURL string
	otlpURL  string // a local OTLP/HTTP sink that stands in for the collector
	runs     map[string][]string
}

// problems lists everything wrong with files; none means they are fine.
func (d *deployChecker) problems(files map[string]string) []string {
	var p []string
	expose, health, dp := checkDockerfile(files["Dockerfile"])
	p = append(p, dp...)
	cw, cp := checkCompose(files)
	p = append(p, cp...)
	kw, kp := checkKubernetes(files)
	p = append(p, kp...)
	for i := range cw {
		w := &cw[i]
		w.healthcmd = health
		for port := range listeners(w.env) {
			if !slices.Contains(expose, port) {
				p = append(p, fmt.Sprintf("%s listens on %d, which the Dockerfile does not EXPOSE (%v)", w.where, port, expose))
			}
		}
		if !health {
			p = append(p, fmt.Sprintf("%s: the image has no HEALTHCHECK running `boomerang healthcheck`, and compose gives it none", w.where))
		}
	}
	for _, w := range append(cw, kw...) {
		p = append(p, checkVars(w)...)
		p = append(p, checkPorts(w)...)
		p = append(p, d.run(w)...)
	}
	return p
}

// checkVars: every BOOMERANG_* variable is one Boomerang reads.
func checkVars(w workload) []string {
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	var p []string
	for _, name := range sortedKeys(w.env) {
		if !strings.HasPrefix(name, "BOOMERANG_") || known[name] {
			continue
		}
		if _, ok := pendingVars[name]; ok {
			continue // logged once by TestDeployManifests
		}
		p = append(p, fmt.Sprintf("%s: %s is not in config.Vars: Boomerang does not read it", w.where, name))
	}
	return p
}

// listeners are the ports a process with env listens on, and the variable
// that sets each, as serve opens them: BOOMERANG_ADDR (default :8080) for a
// role that runs the API, and every other BOOMERANG_*_ADDR of config.Vars
// (or pendingVars) that is set.
func listeners(env map[string]string) map[int]string {
	out := map[int]string{}
	for name, addr := range env {
		_, pending := pendingVars[name]
		known := pending || slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == name })
		if !known || !strings.HasSuffix(name, "_ADDR") || addr == "" || name == "BOOMERANG_ADDR" {
			continue
		}
		if port, err := addrPort(addr); err == nil {
			out[port] = name
		}
	}
	if config.Role(orDefault(env["BOOMERANG_ROLE"], "all")).RunsAPI() {
		if port, err := addrPort(orDefault(env["BOOMERANG_ADDR"], ":8080")); err == nil {
			out[port] = "BOOMERANG_ADDR"
		}
	}
	return out
}

func addrPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkPorts: every port others reach the process on is one it listens on.
func checkPorts(w workload) []string {
	l := listeners(w.env)
	var p []string
	for _, port := range sortedKeys(w.ports) {
		if _, ok := l[port]; !ok {
			p = append(p, fmt.Sprintf("%s: %s %d is no listener of this process (its environment makes it listen on %v)", w.where, w.ports[port], port, describe(l)))
		}
	}
	for _, pr := range w.probes {
		if _, ok := l[pr.port]; !ok {
			p = append(p, fmt.Sprintf("%s: %s probe on port %d, where this process does not listen (it listens on %v)", w.where, pr.kind, pr.port, describe(l)))
		}
	}
	return p
}

func describe(l map[int]string) string {
	var s []string
	for _, port := range sortedKeys(l) {
		s = append(s, fmt.Sprintf("%d (%s)", port, l[port]))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// run starts the process a workload describes through run(), on free
// loopback ports, and asks it every probe; it returns what went wrong.
func (d *deployChecker) run(w workload) []string {
	key := fmt.Sprint(sortedPairs(w.env), w.probes, w.healthcmd)
	if p, ok := d.runs[key]; ok {
		return relabel(p, w.where)
	}
	began := time.Now()
	p := d.start(w)
	d.t.Logf("%s: started, probed and stopped in %v", w.where, time.Since(began).Round(time.Millisecond))
	d.runs[key] = p
	return relabel(p, w.where)
}

func sortedPairs(m map[string]string) []string {
	var s []string
	for _, k := range sortedKeys(m) {
		s = append(s, k+"="+m[k])
	}
	return s
}

// relabel puts where in front of problems found for an identical workload.
func relabel(p []string, where string) []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = where + ": " + s
	}
	return out
}

func (d *deployChecker) start(w workload) []string {
	l := listeners(w.env)
	env, mapped := d.localEnv(w.env, l)
	getenv := func(k string) string { return env[k] }
	stop, err := d.serve(getenv)
	defer stop()
	if err != nil {
		return []string{err.Error()}
	}

	var p []string
	for _, port := range sortedKeys(l) {
		if _, ok := pendingVars[l[port]]; ok && !slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == l[port] }) {
			continue // not served before its branch is merged
		}
		if err := dialWithin(mapped[port], 5*time.Second); err != nil {
			p = append(p, fmt.Sprintf("%s=%s: nothing listens there: %v", l[port], w.env[l[port]], err))
		}
	}
	for _, pr := range w.probes {
		addr, ok := mapped[pr.port]
		if !ok {
			continue // checkPorts says so
		}
		if err := getOK("http://"+addr+pr.path, 10*time.Second); err != nil {
			p = append(p, fmt.Sprintf("%s probe: %v", pr.kind, err))
		}
	}
	if w.healthcmd {
		var out, errOut strings.Builder
		if err := run(context.Background(), []string{"boomerang", "healthcheck"}, getenv, &out, &errOut); err != nil {
			p = append(p, fmt.Sprintf("HEALTHCHECK (boomerang healthcheck) fails: %v", err))
		}
	}
	return p
}

// localEnv is a workload's environment for a process in this test: its
// BOOMERANG_* and OTEL_* variables (so the binary parses them as given),
// listeners moved to free loopback ports (mapped: manifest port →
// address), the test's Redis and admin token for secrets, and a local sink
// for the OTLP endpoint.
func (d *deployChecker) localEnv(manifest map[string]string, l map[int]string) (env map[string]string, mapped map[int]string) {
	env, mapped = map[string]string{}, map[int]string{}
	for k, v := range manifest {
		switch {
		case strings.HasPrefix(k, "BOOMERANG_"):
			env[k] = v
		case strings.HasPrefix(k, "OTEL_") && strings.HasSuffix(k, "_ENDPOINT"):
			env[k] = d.otlpURL
		case strings.HasPrefix(k, "OTEL_"):
			env[k] = v
		}
	}
	for port, name := range l {
		mapped[port] = freeAddr(d.t)
		env[name] = mapped[port]
	}
	if _, ok := env["BOOMERANG_REDIS_URL"]; ok {
		env["BOOMERANG_REDIS_URL"] = d.redisURL
	}
	if _, ok := env["BOOMERANG_ADMIN_TOKEN"]; ok {
		env["BOOMERANG_ADMIN_TOKEN"] = testAdminToken
	}
	return env, mapped
}

// serve runs `boomerang serve` until stop, and returns once it has started.
func (d *deployChecker) serve(getenv func(string) string) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"boomerang", "serve"}, getenv, stdout, stderr) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			d.t.Errorf("the process did not stop within 20 s of its cancellation")
		}
	}
	started := "API listening"
	if !config.Role(orDefault(getenv("BOOMERANG_ROLE"), "all")).RunsAPI() {
		started = "worker running"
	}
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(stdout.String(), started); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err
			return stop, fmt.Errorf("boomerang serve with this environment stops: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return stop, fmt.Errorf("boomerang serve with this environment did not start in 15 s:\n%s", stderr)
		}
	}
	return stop, nil
}

func dialWithin(addr string, d time.Duration) error {
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var c net.Conn
		if c, err = net.Dial("tcp", addr); err == nil {
			return c.Close()
		}
	}
	return err
}

// getOK GETs url until it answers 200, for at most d.
func getOK(url string, d time.Duration) error {
	path := url[strings.Index(url[len("http://"):], "/")+len("http://"):]
	last := ""
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("answered %d", resp.StatusCode)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			break // no such route: waiting will not make one
		}
	}
	return fmt.Errorf("GET %s %s, want 200", path, last)
}

// imagePinned: a digest, or a tag that is not latest.
func imagePinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(name, ":")
	return i > 0 && i < len(name)-1 && name[i+1:] != "latest" && !strings.Contains(name, "$")
}

// checkDockerfile returns the EXPOSEd ports, whether a HEALTHCHECK runs
// `boomerang healthcheck`, and what is wrong.
func checkDockerfile(text string) (expose []int, health bool, p []string) {
	user := ""
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			if !imagePinned(f[1]) {
				p = append(p, fmt.Sprintf("Dockerfile: FROM %s is not pinned by a tag", f[1]))
			}
		case "EXPOSE":
			for _, s := range f[1:] {
				if n, err := strconv.Atoi(strings.TrimSuffix(s, "/tcp")); err == nil {
					expose = append(expose, n)
				}
			}
		case "HEALTHCHECK":
			health = strings.Contains(line, `"healthcheck"`)
		case "USER":
			user = f[1]
		case "RUN":
			if strings.Contains(line, "go build") && (!strings.Contains(line, "CGO_ENABLED=0") || !strings.Contains(line, "-trimpath") || !strings.Contains(line, "main.version")) {
				p = append(p, "Dockerfile: go build without CGO_ENABLED=0, -trimpath or -X main.version")
			}
		}
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		p = append(p, fmt.Sprintf("Dockerfile: the final stage runs as %q, want a non-root USER", user))
	}
	return expose, health, p
}

// compose ----------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	ReadOnly    bool              `yaml:"read_only"`
	StopGrace   string            `yaml:"stop_grace_period"`
}

var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate does what compose does to ${VAR}, ${VAR:-default},
// ${VAR:?error} and $$, with vars from the env file.
func interpolate(text string, vars map[string]string) (string, []string) {
	var p []string
	out := interpolation.ReplaceAllStringFunc(text, func(m string) string {
		if m == "$$" {
			return "$"
		}
		g := interpolation.FindStringSubmatch(m)
		name, op, arg := g[1], g[2], g[3]
		if name == "" {
			name = g[4]
		}
		v, set := vars[name]
		switch {
		case op == ":-" && v == "", op == "-" && !set:
			return arg
		case op == ":?" && v == "", op == "?" && !set:
			p = append(p, fmt.Sprintf("deploy/compose.yaml: %s is required (%s) and deploy/.env.example does not set it", name, arg))
		}
		return v
	})
	return out, p
}

func parseEnvFile(text string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return vars
}

func checkCompose(files map[string]string) ([]workload, []string) {
	const file = "deploy/compose.yaml"
	var p []string
	var raw composeFile
	if err := yaml.Unmarshal([]byte(files[file]), &raw); err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", file, err)}
	}
	// Secrets only by reference, their examples only placeholders.
	for _, name := range sortedKeys(raw.Services) {
		for _, v := range secretVars {
			if val, ok := raw.Services[name].Environment[v]; ok && !strings.Contains(val, "${") {
				p = append(p, fmt.Sprintf("%s: service %s sets %s in the file; take it from deploy/.env (${…})", file, name, v))
			}
		}
	}
	example := parseEnvFile(files["deploy/.env.example"])
	for _, v := range secretVars {
		if val, ok := example[v]; ok && val != "CHANGE_ME" {
			p = append(p, fmt.Sprintf("deploy/.env.example: %s=%q, want the placeholder CHANGE_ME", v, val))
		}
	}
	text, ip := interpolate(files[file], example)
	p = append(p, ip...)
	var c composeFile
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		return nil, append(p, fmt.Sprintf("%s after interpolation: %v", file, err))
	}

	var ws []workload
	byName := map[string]*workload{}
	roles := map[string]int{}
	redis := false
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !imagePinned(s.Image) {
			p = append(p, fmt.Sprintf("%s: service %s: image %q is not pinned by a tag", file, name, s.Image))
		}
		if strings.HasPrefix(s.Image, "redis:") {
			redis = true
			cmd := strings.Join(s.Command, " ")
			for _, want := range []string{"--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"} {
				if !strings.Contains(cmd, want) {
					p = append(p, fmt.Sprintf("%s: service %s: Redis runs without %s (command %q)", file, name, want, cmd))
				}
			}
		}
		if _, ok := s.Environment["BOOMERANG_ROLE"]; !ok {
			continue
		}
		roles[s.Environment["BOOMERANG_ROLE"]]++
		if !s.ReadOnly {
			p = append(p, fmt.Sprintf("%s: service %s: read_only is not true", file, name))
		}
		grace, _ := time.ParseDuration(orDefault(s.StopGrace, "10s")) // compose's default
		p = append(p, checkGrace(file+" service "+name+": stop_grace_period", grace, s.Environment)...)
		ws = append(ws, workload{where: file + " service " + name, env: s.Environment, ports: map[int]string{}})
	}
	for i := range ws {
		byName[strings.TrimPrefix(ws[i].where, file+" service ")] = &ws[i]
	}
	if !redis {
		p = append(p, file+": no redis service")
	}
	if roles["api"] < 2 || roles["worker"] < 2 {
		p = append(p, fmt.Sprintf("%s: %d api and %d worker services, want 2 of each", file, roles["api"], roles["worker"]))
	}

	// What reaches the processes: nginx's upstreams, Prometheus's targets.
	reach := func(source, hostport string) {
		host, port, err := net.SplitHostPort(hostport)
		n, _ := strconv.Atoi(port)
		w, ok := byName[host]
		if err != nil || !ok {
			p = append(p, fmt.Sprintf("%s: %s is no Boomerang service of %s", source, hostport, file))
			return
		}
		w.ports[n] = source + " " + hostport
	}
	upstreams := regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9_.-]+:\d+)`).FindAllStringSubmatch(files["deploy/nginx.conf"], -1)
	if len(upstreams) == 0 {
		p = append(p, "deploy/nginx.conf: no upstream servers")
	}
	for _, m := range upstreams {
		reach("deploy/nginx.conf upstream", m[1])
	}
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(files["deploy/prometheus.yml"]), &prom); err != nil {
		p = append(p, fmt.Sprintf("deploy/prometheus.yml: %v", err))
	}
	scraped := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				reach("deploy/prometheus.yml target", target)
				scraped[strings.Split(target, ":")[0]] = true
			}
		}
	}
	for _, name := range sortedKeys(byName) {
		if !scraped[name] {
			p = append(p, fmt.Sprintf("deploy/prometheus.yml: does not scrape %s", name))
		}
	}
	return ws, p
}

// kubernetes -------------------------------------------------------------

type k8sObject struct {
	where    string // file, kind and name, for messages
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Selector map[string]any `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext               k8sSecurity    `yaml:"securityContext"`
				Containers                    []k8sContainer `yaml:"containers"`
				TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			Name       string `yaml:"name"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sSecurity struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe   *k8sProbe   `yaml:"livenessProbe"`
	ReadinessProbe  *k8sProbe   `yaml:"readinessProbe"`
	SecurityContext k8sSecurity `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

// matchLabels is a selector's labels: a Service's map, or a Deployment's
// and a PodDisruptionBudget's matchLabels.
func matchLabels(sel map[string]any) map[string]string {
	if ml, ok := sel["matchLabels"].(map[string]any); ok {
		sel = ml
	}
	out := map[string]string{}
	for k, v := range sel {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type deployment struct {
	where  string
	labels map[string]string
	ports  map[string]int // containerPort by name
}

func checkKubernetes(files map[string]string) ([]workload, []string) {
	objs, p := decodeManifests(files)
	var ws []workload
	var deps []deployment
	roles := map[string]int{}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		dw, dep, dp := checkDeployment(o)
		p = append(p, dp...)
		for _, w := range dw {
			roles[orDefault(w.env["BOOMERANG_ROLE"], "all")]++
		}
		ws, deps = append(ws, dw...), append(deps, dep)
	}
	if roles["api"] == 0 || roles["worker"] == 0 {
		p = append(p, fmt.Sprintf("deploy/kubernetes: Deployments by role %v, want api and worker", roles))
	}
	return ws, append(p, checkSelectors(objs, deps)...)
}

// decodeManifests reads every object of every file in deploy/kubernetes.
func decodeManifests(files map[string]string) ([]k8sObject, []string) {
	var objs []k8sObject
	var p []string
	for _, file := range sortedKeys(files) {
		if !strings.HasPrefix(file, "deploy/kubernetes/") {
			continue
		}
		dec := yaml.NewDecoder(strings.NewReader(files[file]))
		for {
			var o k8sObject
			if err := dec.Decode(&o); err != nil {
				if !errors.Is(err, io.EOF) {
					p = append(p, fmt.Sprintf("%s: %v", file, err))
				}
				break
			}
			o.where = fmt.Sprintf("%s %s %s", file, o.Kind, o.Metadata.Name)
			objs = append(objs, o)
		}
	}
	return objs, p
}

// checkDeployment returns the processes a Deployment runs, its pods'
// labels and ports, and what is wrong with it.
func checkDeployment(o k8sObject) ([]workload, deployment, []string) {
	var p []string
	labels := o.Spec.Template.Metadata.Labels
	if !selects(matchLabels(o.Spec.Selector), labels) {
		p = append(p, fmt.Sprintf("%s: selector %v does not select its own pods %v", o.where, matchLabels(o.Spec.Selector), labels))
	}
	pod := o.Spec.Template.Spec
	dep := deployment{where: o.where, labels: labels, ports: map[string]int{}}
	for _, c := range pod.Containers {
		for _, port := range c.Ports {
			dep.ports[orDefault(port.Name, "#"+strconv.Itoa(port.ContainerPort))] = port.ContainerPort
		}
	}
	grace := 30 * time.Second // Kubernetes's default
	if g := pod.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	var ws []workload
	for _, c := range pod.Containers {
		w, cp := checkContainer(o.where+" container "+c.Name, c, pod.SecurityContext, dep)
		p = append(p, cp...)
		p = append(p, checkGrace(w.where+": terminationGracePeriodSeconds", grace, w.env)...)
		ws = append(ws, w)
	}
	return ws, dep, p
}

// checkContainer returns the process a container runs and what is wrong with it.
func checkContainer(where string, c k8sContainer, pod k8sSecurity, dep deployment) (workload, []string) {
	var p []string
	w := workload{where: where, env: map[string]string{}, ports: map[int]string{}}
	if !imagePinned(c.Image) {
		p = append(p, fmt.Sprintf("%s: image %q is not pinned by a tag", where, c.Image))
	}
	if !isTrue(c.SecurityContext.RunAsNonRoot) && !isTrue(pod.RunAsNonRoot) {
		p = append(p, where+": runAsNonRoot is not true")
	}
	if !isTrue(c.SecurityContext.ReadOnlyRootFilesystem) {
		p = append(p, where+": readOnlyRootFilesystem is not true")
	}
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		p = append(p, where+": allowPrivilegeEscalation is not false")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		p = append(p, where+": resources want requests of cpu and memory and a memory limit")
	}
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			w.env[e.Name] = *e.Value
			if slices.Contains(secretVars, e.Name) {
				p = append(p, fmt.Sprintf("%s: %s has a value in the manifest; take it from a Secret (secretKeyRef)", where, e.Name))
			}
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			w.env[e.Name] = ""
		default:
			p = append(p, fmt.Sprintf("%s: %s has neither a value nor a secretKeyRef", where, e.Name))
		}
	}
	for _, port := range c.Ports {
		w.ports[port.ContainerPort] = "containerPort"
	}
	for _, pr := range []struct {
		kind, want string
		probe      *k8sProbe
	}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			p = append(p, fmt.Sprintf("%s: no %s probe (httpGet %s)", where, pr.kind, pr.want))
			continue
		}
		if pr.probe.HTTPGet.Path != pr.want {
			p = append(p, fmt.Sprintf("%s: %s probe on %s, want %s", where, pr.kind, pr.probe.HTTPGet.Path, pr.want))
		}
		port, ok := dep.port(pr.probe.HTTPGet.Port)
		if !ok {
			p = append(p, fmt.Sprintf("%s: %s probe on port %v, which names no containerPort", where, pr.kind, pr.probe.HTTPGet.Port))
			continue
		}
		w.probes = append(w.probes, deployProbe{kind: pr.kind, path: pr.probe.HTTPGet.Path, port: port})
	}
	return w, p
}

// port resolves a probe's port or a Service's targetPort: a number, or a
// containerPort's name.
func (d deployment) port(ref any) (int, bool) {
	switch v := ref.(type) {
	case int:
		return v, true
	case string:
		n, ok := d.ports[v]
		return n, ok
	}
	return 0, false
}

// checkSelectors: every Service selects pods that have its targetPorts,
// every PodDisruptionBudget selects pods, every Deployment has one budget.
func checkSelectors(objs []k8sObject, deps []deployment) []string {
	var p []string
	services, budgets := 0, map[string]int{}
	for _, o := range objs {
		sel := matchLabels(o.Spec.Selector)
		var matched []deployment
		for _, d := range deps {
			if selects(sel, d.labels) {
				matched = append(matched, d)
			}
		}
		switch o.Kind {
		case "Service":
			services++
			if len(matched) == 0 {
				p = append(p, fmt.Sprintf("%s: selector %v selects no Deployment's pods", o.where, sel))
			}
			for _, sp := range o.Spec.Ports {
				for _, d := range matched {
					if n, ok := d.port(sp.TargetPort); !ok || !slices.Contains(mapValues(d.ports), n) {
						p = append(p, fmt.Sprintf("%s: port %s: targetPort %v is no containerPort of %s", o.where, sp.Name, sp.TargetPort, d.where))
					}
				}
			}
		case "PodDisruptionBudget":
			if len(matched) == 0 {
				p = append(p, fmt.Sprintf("%s: PodDisruptionBudget selector %v selects no Deployment's pods", o.where, sel))
			}
			for _, d := range matched {
				budgets[d.where]++
			}
		}
	}
	if services == 0 {
		p = append(p, "deploy/kubernetes: no Service")
	}
	for _, d := range deps {
		if budgets[d.where] != 1 {
			p = append(p, fmt.Sprintf("%s: %d PodDisruptionBudgets select its pods, want 1", d.where, budgets[d.where]))
		}
	}
	return p
}

func isTrue(b *bool) bool { return b != nil && *b }

// checkGrace: the orchestrator waits longer than BOOMERANG_SHUTDOWN_TIMEOUT
// before SIGKILL, so that in-flight work gets the time it was promised.
func checkGrace(where string, grace time.Duration, env map[string]string) []string {
	cfg, err := config.Load(func(k string) string {
		if k == "BOOMERANG_SHUTDOWN_TIMEOUT" {
			return env[k]
		}
		return ""
	})
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	if grace <= cfg.ShutdownTimeout {
		return []string{fmt.Sprintf("%s is %v, not more than BOOMERANG_SHUTDOWN_TIMEOUT (%v): in-flight work is killed", where, grace, cfg.ShutdownTimeout)}
	}
	return nil
}

func mapValues(m map[string]int) []int {
	var v []int
	for _, n := range m {
		v = append(v, n)
	}
	sort.Ints(v)
	return v
}
