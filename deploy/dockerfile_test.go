package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// root is the module root, where the Dockerfile is.
const root = ".."

// instruction is one Dockerfile instruction with its arguments decoded.
type instruction struct {
	cmd   string   // upper case: FROM, RUN, …
	args  []string // JSON-form elements, or the words the parser split
	flags []string // --from=build, --mount=…
	json  bool     // written in JSON (exec) form
	line  int
}

// stage is a FROM and the instructions after it.
type stage struct {
	name, image string
	body        []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// last returns the final instruction cmd of s; later ones override earlier
// ones for ENTRYPOINT, CMD, USER and HEALTHCHECK.
func (s stage) last(t *testing.T, cmd string) instruction {
	t.Helper()
	all := s.all(cmd)
	if len(all) == 0 {
		t.Fatalf("stage %q has no %s", s.name, cmd)
	}
	return all[len(all)-1]
}

// env returns the ENV of s, values unquoted.
func (s stage) env() map[string]string {
	out := map[string]string{}
	for _, in := range s.all("ENV") {
		for i := 0; i+1 < len(in.args); i += 3 { // key, value, "="
			out[in.args[i]] = unquote(in.args[i+1])
		}
	}
	return out
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// dockerfile parses the Dockerfile with BuildKit's parser (the one
// `docker build` uses) into global ARGs and stages.
func dockerfile(t *testing.T) (args map[string]string, stages []stage) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile does not parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile line %d: %s", w.Location.Start.Line, w.Short)
	}
	args = map[string]string{}
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToUpper(n.Value), flags: n.Flags, json: n.Attributes["json"], line: n.StartLine}
		for c := n.Next; c != nil; c = c.Next {
			in.args = append(in.args, c.Value)
		}
		switch {
		case in.cmd == "FROM":
			st := stage{image: in.args[0]}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "AS") {
				st.name = in.args[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args[0], "=")
			args[k] = unquote(v)
		case len(stages) == 0:
			t.Fatalf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	return args, stages
}

// expand substitutes ${NAME} and $NAME from args.
func expand(s string, args map[string]string) string {
	return os.Expand(s, func(k string) string { return args[k] })
}

// goDirective reads the go line of go.mod.
func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// imageCommand is what the final stage runs, decoded.
type imageCommand struct {
	entrypoint, cmd []string
	addr            string // --addr of CMD
	dataDir         string // --data-dir of CMD
	health          []string
	env             map[string]string
}

func flagValue(t *testing.T, argv []string, name string) string {
	t.Helper()
	for i, a := range argv {
		if a == name && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	t.Fatalf("%q has no %s", argv, name)
	return ""
}

func finalCommand(t *testing.T, final stage) imageCommand {
	t.Helper()
	ep, cmd, hc := final.last(t, "ENTRYPOINT"), final.last(t, "CMD"), final.last(t, "HEALTHCHECK")
	for _, in := range []instruction{ep, cmd, hc} {
		// The final image has no shell: a shell-form instruction would
		// run "/bin/sh -c …" and fail at start.
		if !in.json {
			t.Fatalf("line %d: %s is in shell form; the image has no shell, use JSON (exec) form", in.line, in.cmd)
		}
	}
	if len(hc.args) < 2 || hc.args[0] != "CMD" {
		t.Fatalf("line %d: HEALTHCHECK %q, want HEALTHCHECK [options] CMD [...]", hc.line, hc.args)
	}
	ic := imageCommand{entrypoint: ep.args, cmd: cmd.args, health: hc.args[1:], env: final.env()}
	ic.addr = flagValue(t, cmd.args, "--addr")
	ic.dataDir = flagValue(t, cmd.args, "--data-dir")
	return ic
}

// TestDockerfile checks the image definition as written: the Go toolchain
// of go.mod, a static build, a minimal non-root final image whose port,
// volume and health check agree with its command, and OCI labels.
func TestDockerfile(t *testing.T) {
	args, stages := dockerfile(t)
	build, final := stages[0], stages[len(stages)-1]

	goVersion := goDirective(t)
	if img := expand(build.image, args); !strings.HasPrefix(img, "golang:"+goVersion+"-") && img != "golang:"+goVersion {
		t.Errorf("build stage FROM %s (%s), want golang:%s (go.mod's go directive)", build.image, img, goVersion)
	}
	if env := build.env(); env["CGO_ENABLED"] != "0" {
		t.Errorf("build stage ENV CGO_ENABLED=%q, want 0: the final image has no libc", env["CGO_ENABLED"])
	}
	if img := expand(final.image, args); !strings.HasPrefix(img, "gcr.io/distroless/static") && img != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static or scratch", img)
	}

	user := final.last(t, "USER").args[0]
	name, group, _ := strings.Cut(user, ":")
	for _, id := range []string{name, group} {
		if id == "0" || id == "root" {
			t.Errorf("USER %s: the image must not run as root", user)
		}
	}
	if _, err := strconv.Atoi(name); err != nil && final.image == "scratch" {
		t.Errorf("USER %s: scratch has no /etc/passwd unless one is copied; use a numeric id", user)
	}

	ic := finalCommand(t, final)
	if !slices.Equal(ic.entrypoint, []string{"stagegate"}) {
		t.Errorf("ENTRYPOINT %q, want [\"stagegate\"]", ic.entrypoint)
	}
	if want := []string{"serve", "--addr", "0.0.0.0:8080", "--data-dir", "/data"}; !slices.Equal(ic.cmd, want) {
		t.Errorf("CMD %q, want %q", ic.cmd, want)
	}
	_, port, err := net.SplitHostPort(ic.addr)
	if err != nil {
		t.Fatalf("CMD --addr %q: %v", ic.addr, err)
	}
	var exposed []string
	for _, in := range final.all("EXPOSE") {
		for _, p := range in.args {
			exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
		}
	}
	if !slices.Equal(exposed, []string{port}) {
		t.Errorf("EXPOSE %v, want exactly the CMD's port %s", exposed, port)
	}
	var volumes []string
	for _, in := range final.all("VOLUME") {
		volumes = append(volumes, in.args...)
	}
	if !slices.Equal(volumes, []string{ic.dataDir}) {
		t.Errorf("VOLUME %v, want exactly the CMD's --data-dir %s", volumes, ic.dataDir)
	}

	// The health check is the binary's own verb against the CMD's port on
	// loopback.
	if len(ic.health) < 2 || ic.health[0] != ic.entrypoint[0] || ic.health[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK CMD %q, want [%q, \"healthcheck\", …]", ic.health, ic.entrypoint[0])
	} else {
		u, err := url.Parse(flagValue(t, ic.health, "--url"))
		if err != nil || u.Hostname() != "127.0.0.1" || u.Port() != port || u.Path != "/healthz" {
			t.Errorf("HEALTHCHECK --url %v, want http://127.0.0.1:%s/healthz", u, port)
		}
	}

	// The binary lands on the PATH distroless and scratch images run with,
	// and the volume's mount point belongs to the user.
	var binCopied, dataOwned bool
	for _, in := range final.all("COPY") {
		if len(in.args) != 2 || !slices.Contains(in.flags, "--from="+build.name) {
			continue
		}
		switch in.args[1] {
		case "/usr/local/bin/stagegate", "/usr/bin/stagegate", "/bin/stagegate":
			binCopied = true
		case ic.dataDir:
			dataOwned = slices.Contains(in.flags, "--chown="+user) || slices.Contains(in.flags, "--chown="+name)
		}
	}
	if !binCopied {
		t.Error("no COPY --from=build puts stagegate in /usr/local/bin, /usr/bin or /bin")
	}
	if !dataOwned {
		t.Errorf("no COPY --from=build --chown=%s creates %s: a fresh volume would be root's and serve could not write it", user, ic.dataDir)
	}

	labels := map[string]string{}
	for _, in := range final.all("LABEL") {
		for i := 0; i+1 < len(in.args); i += 3 {
			labels[in.args[i]] = unquote(in.args[i+1])
		}
	}
	for _, k := range []string{"title", "description", "source", "version", "revision"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("final stage has no org.opencontainers.image.%s label", k)
		}
	}
}

// buildCommand returns the build stage's `go build` command, its output
// path and the stage's ENV.
func buildCommand(t *testing.T) (cmd, out string, env map[string]string) {
	t.Helper()
	_, stages := dockerfile(t)
	build := stages[0]
	for _, in := range build.all("RUN") {
		if c := strings.Join(in.args, " "); strings.Contains(c, "go build") {
			m := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(c)
			if m == nil {
				t.Fatalf("line %d: go build without -o", in.line)
			}
			return c, m[1], build.env()
		}
	}
	t.Fatal("the build stage runs no go build")
	return
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// imageBinary builds stagegate with the Dockerfile's own build command and
// environment (the output redirected to a temporary directory), once per
// test binary.
func imageBinary(t *testing.T) string {
	t.Helper()
	cmd, out, env := buildCommand(t)
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stagegate-image-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "stagegate")
		c := exec.Command("sh", "-c", strings.Replace(cmd, out, binaryPath, 1))
		c.Dir = root
		c.Env = os.Environ()
		for k, v := range env {
			c.Env = append(c.Env, k+"="+v)
		}
		if output, err := c.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("%s: %v\n%s", cmd, err, output)
		}
	})
	if binaryErr != nil {
		t.Fatalf("building as the Dockerfile does: %v", binaryErr)
	}
	return binaryPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

// TestImageBinaryIsStatic: the build command yields a binary that needs no
// dynamic loader, so it runs on distroless/static (or scratch).
func TestImageBinaryIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	f, err := elf.Open(imageBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it is dynamically linked (cgo?)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}

// logLine is a line of serve's JSON log.
type logLine struct {
	Msg  string `json:"msg"`
	Addr string `json:"addr"`
}

// TestImageCommandRuns runs the binary as the image would: ENTRYPOINT +
// CMD with the image's environment only, the data dir in a temporary
// directory and the address on loopback with a free port (instead of
// 0.0.0.0:8080). It then checks /healthz, /readyz and /metrics, the
// HEALTHCHECK command as written (its port moved alike), that the
// healthcheck verb fails against nothing, and a clean exit on SIGTERM.
func TestImageCommandRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := imageBinary(t)
	_, stages := dockerfile(t)
	ic := finalCommand(t, stages[len(stages)-1])
	dataDir := filepath.Join(t.TempDir(), "data")
	argv := slices.Clone(ic.cmd)
	for i := range argv {
		switch argv[i] {
		case ic.addr:
			argv[i] = "127.0.0.1:0"
		case ic.dataDir:
			argv[i] = dataDir
		}
	}
	// Only the image's environment: nothing from the test's leaks in.
	env := []string{"PATH=" + filepath.Dir(bin) + ":/usr/local/bin:/usr/bin:/bin"}
	for k, v := range ic.env {
		env = append(env, k+"="+v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, filepath.Join(filepath.Dir(bin), ic.entrypoint[0]), argv...)
	srv.Env = env
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logsMu sync.Mutex
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logsMu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			logsMu.Unlock()
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "stagegate listening" {
				addrc <- l.Addr
			}
		}
		exited <- srv.Wait()
	}()
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		logsMu.Lock()
		defer logsMu.Unlock()
		t.Fatalf("serve exited before listening: %v\n%s", err, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not start listening within 2 minutes")
	}
	base := "http://" + addr
	for _, c := range []struct{ path, contains string }{
		{"/healthz", `"ok"`},
		{"/readyz", `"ready"`},
		{"/metrics", "stagegate_http_request_duration_seconds"},
		{"/metrics", "process_resident_memory_bytes"},
	} {
		body, status := get(t, base+c.path)
		if status != http.StatusOK || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s = %d, body without %q:\n%.500s", c.path, status, c.contains, body)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "keys", "dev.pub")); err != nil {
		t.Errorf("--data-dir not used: %v", err)
	}

	// The HEALTHCHECK as written, pointed at this port.
	_, port, _ := net.SplitHostPort(addr)
	_, imagePort, _ := net.SplitHostPort(ic.addr)
	health := slices.Clone(ic.health)
	for i := range health {
		health[i] = strings.Replace(health[i], ":"+imagePort+"/", ":"+port+"/", 1)
	}
	if out, code := run(t, bin, env, health[1:]...); code != 0 {
		t.Errorf("HEALTHCHECK %q exited %d: %s", health, code, out)
	}
	if out, code := run(t, bin, env, "healthcheck", "--url", "http://127.0.0.1:"+closedPort(t)+"/healthz", "--timeout", "3s"); code != 1 {
		t.Errorf("healthcheck against a closed port exited %d, want 1: %s", code, out)
	}
	if out, code := run(t, bin, env, "--help"); code != 0 || !strings.Contains(out, "healthcheck") {
		t.Errorf("stagegate --help (%d) does not list healthcheck:\n%s", code, out)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			logsMu.Lock()
			defer logsMu.Unlock()
			t.Errorf("serve exited with %v after SIGTERM, want 0\n%s", err, logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Error("serve did not exit within 45s of SIGTERM")
	}
}

func get(t *testing.T, u string) (string, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}

// run runs the binary and returns its combined output and exit code.
func run(t *testing.T, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = env
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("running %s: %v", bin, err)
	return "", -1
}

// closedPort returns a loopback port nothing listens on (it was free a
// moment ago).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}
