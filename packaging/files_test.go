package packaging

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/oeproxy/oeproxy/config"
)

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBuildFlagsAgree keeps the Makefile, the Dockerfile and the release script building the same way: static,
// without local paths, stripped, and stamped with version, commit and date.
func TestBuildFlagsAgree(t *testing.T) {
	for _, f := range []string{"Makefile", "Dockerfile", "scripts/release.sh"} {
		s := readRepoFile(t, f)
		s = strings.NewReplacer("$(GO) build", "go build", `"$GO" build`, "go build").Replace(s)
		for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", "-s -w -X ", ".Version=", ".Commit=", ".Date="} {
			if !strings.Contains(s, want) {
				t.Errorf("%s does not build with %q", f, want)
			}
		}
		if !strings.Contains(s, versionPkg) {
			t.Errorf("%s does not stamp %s", f, versionPkg)
		}
	}
}

// dockerfile is the Dockerfile as instructions (continuation lines joined, comments dropped).
func dockerfile(t *testing.T) []string {
	var out []string
	cur := ""
	for _, line := range strings.Split(readRepoFile(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		out = append(out, strings.Join(strings.Fields(cur+trimmed), " "))
		cur = ""
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	last := 0
	for i, in := range ins {
		if strings.HasPrefix(in, "FROM ") {
			last = i
		}
	}
	final := ins[last:]
	if final[0] != "FROM ${RUNTIME_IMAGE} AS runtime" {
		t.Errorf("the final stage starts %q, want FROM ${RUNTIME_IMAGE}", final[0])
	}
	for _, want := range []string{
		"ARG BUILD_IMAGE=golang:1.26-bookworm",
		"ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot",
	} {
		if !slices.Contains(ins, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, want := range []string{
		"USER 65532:65532",
		"ENV OEPROXY_DATA_DIR=/data OEPROXY_LISTEN_HOST=0.0.0.0 OEPROXY_LISTEN_ALLOW_NON_LOOPBACK=true OEPROXY_ADMIN_LISTEN=0.0.0.0:7080",
		"VOLUME /data",
		"EXPOSE 5001-5010 7080",
		`ENTRYPOINT ["/oeproxy"]`,
		`CMD ["serve"]`,
		"COPY --from=build /out/oeproxy /oeproxy",
	} {
		if !slices.Contains(final, want) {
			t.Errorf("the final stage lacks %q", want)
		}
	}
	hc := regexp.MustCompile(`^HEALTHCHECK (--\S+ )*CMD \["/oeproxy", "healthcheck"\]$`)
	if !slices.ContainsFunc(final, hc.MatchString) {
		t.Error(`the final stage lacks HEALTHCHECK ... CMD ["/oeproxy", "healthcheck"]`)
	}
	for _, in := range final {
		if strings.HasPrefix(in, "ENV ") || strings.HasPrefix(in, "ARG ") {
			if strings.Contains(in, "MASTER_KEY") || strings.Contains(in, "PASSPHRASE") {
				t.Errorf("the image must not carry a key: %q", in)
			}
			checkEnvNames(t, "Dockerfile", in)
		}
		if strings.HasPrefix(in, "RUN ") {
			t.Errorf("the final stage runs %q: distroless and scratch bases have no shell", in)
		}
	}
	// The build image's Go must be able to build go.mod's go version.
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if m == nil || !slices.Contains(ins, "ARG BUILD_IMAGE=golang:"+m[1]+"-bookworm") {
		t.Errorf("BUILD_IMAGE does not match go.mod's go %v", m)
	}
}

// checkEnvNames reports OEPROXY_ variables that are no config key's: the daemon would refuse to start on one.
func checkEnvNames(t *testing.T, file, text string) {
	t.Helper()
	known := map[string]bool{"OEPROXY_MASTER_KEY": true, "OEPROXY_PASSPHRASE": true}
	for _, k := range config.Keys() {
		known[config.EnvName(k)] = true
	}
	for _, name := range regexp.MustCompile(`OEPROXY_[A-Z0-9_]+`).FindAllString(text, -1) {
		if !known[name] {
			t.Errorf("%s names %s, which is no config key's variable", file, name)
		}
	}
}

func TestCompose(t *testing.T) {
	text := readRepoFile(t, "docker-compose.yml")
	checkEnvNames(t, "docker-compose.yml", text)
	var c struct {
		Services map[string]struct {
			Build       any               `yaml:"build"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
			Secrets     []string          `yaml:"secrets"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	s, ok := c.Services["oeproxy"]
	if !ok {
		t.Fatal("docker-compose.yml has no oeproxy service")
	}
	for _, want := range []string{"127.0.0.1:5001:5001", "127.0.0.1:7080:7080"} {
		if !slices.Contains(s.Ports, want) {
			t.Errorf("ports %v lack %q", s.Ports, want)
		}
	}
	for _, p := range s.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("port %q is published beyond the host's loopback: anyone who reaches it controls the printer", p)
		}
	}
	if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
		t.Errorf("volumes %v mount nothing at /data", s.Volumes)
	}
	if !slices.Contains(s.Secrets, "oeproxy_master_key") || c.Secrets["oeproxy_master_key"].File == "" {
		t.Errorf("the master key is not a file secret: service secrets %v, secrets %v", s.Secrets, c.Secrets)
	}
	if got := s.Environment["OEPROXY_STORE_KEY_FILE"]; got != "/run/secrets/oeproxy_master_key" {
		t.Errorf("OEPROXY_STORE_KEY_FILE = %q, want the secret's path", got)
	}
	for k := range s.Environment {
		if k == "OEPROXY_MASTER_KEY" || k == "OEPROXY_PASSPHRASE" {
			t.Errorf("%s in the environment: use the secret file", k)
		}
	}
}

// unitDirectives returns "Key=value" lines of a systemd unit.
func unitDirectives(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") {
			out = append(out, l)
		}
	}
	return out
}

func TestSystemdUnits(t *testing.T) {
	self, err := os.Executable() // any executable will do for ExecStart= when verifying
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file, execPath string
		user           bool
		want           []string
	}{
		{"contrib/systemd/oeproxy.service", "/usr/local/bin/oeproxy", false, []string{
			"ExecStart=/usr/local/bin/oeproxy serve", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
			"DynamicUser=yes", "StateDirectory=oeproxy", "Environment=OEPROXY_DATA_DIR=%S/oeproxy",
			"LoadCredential=oeproxy-master-key:/etc/oeproxy/master.key",
			"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
			"ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "RestrictNamespaces=yes", "LockPersonality=yes",
			"MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service", "CapabilityBoundingSet=",
			"WantedBy=multi-user.target",
		}},
		{"contrib/systemd/user/oeproxy.service", "%h/.local/bin/oeproxy", true, []string{
			"ExecStart=%h/.local/bin/oeproxy serve", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
			"NoNewPrivileges=yes", "WantedBy=default.target",
		}},
	}
	analyze, lookErr := exec.LookPath("systemd-analyze")
	for _, c := range cases {
		t.Run(filepath.Base(filepath.Dir(c.file)), func(t *testing.T) {
			text := readRepoFile(t, c.file)
			got := unitDirectives(text)
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("%s lacks %q", c.file, w)
				}
			}
			checkEnvNames(t, c.file, text)
			if lookErr != nil {
				t.Skip("systemd-analyze not installed: directives checked, unit not verified")
			}
			// systemd-analyze verify wants ExecStart's program to exist: point it at this test binary.
			dir := t.TempDir()
			home, runtimeDir := filepath.Join(dir, "home"), filepath.Join(dir, "run")
			bin := self
			if c.user {
				bin = filepath.Join(home, ".local", "bin", "oeproxy")
				if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(self, bin); err != nil {
					t.Fatal(err)
				}
				bin = c.execPath // %h expands to HOME below
			}
			if err := os.MkdirAll(runtimeDir, 0o700); err != nil {
				t.Fatal(err)
			}
			unit := filepath.Join(dir, "oeproxy.service")
			if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, c.execPath, bin)), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"verify", "--man=no"}
			if c.user {
				args = append(args, "--user")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, analyze, append(args, unit)...)
			cmd.Env = append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+runtimeDir)
			out, err := cmd.CombinedOutput()
			// verify exits 0 on unknown keys, only printing them: any output is a finding.
			if err != nil || len(bytes.TrimSpace(out)) != 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", c.file, err, out)
			}
		})
	}
}

// plistValue is a decoded property-list value: string, int64 (as text), bool, []plistValue or map[string]plistValue.
type plistValue any

func decodePlist(r io.Reader) (plistValue, error) {
	d := xml.NewDecoder(r)
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("root element <%s>, want <plist>", se.Name.Local)
			}
			v, end, err := plistNext(d)
			if err != nil {
				return nil, err
			}
			if end {
				return nil, errors.New("empty <plist>")
			}
			return v, nil
		}
	}
}

// plistNext decodes the next value; end reports the parent's end tag instead.
func plistNext(d *xml.Decoder) (v plistValue, end bool, err error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, false, err
		}
		switch tt := tok.(type) {
		case xml.EndElement:
			return nil, true, nil
		case xml.StartElement:
			switch tt.Name.Local {
			case "string", "integer", "key":
				var s string
				if err := d.DecodeElement(&s, &tt); err != nil {
					return nil, false, err
				}
				if tt.Name.Local == "key" {
					return nil, false, fmt.Errorf("<key>%s</key> outside a <dict>", s)
				}
				return s, false, nil
			case "true", "false":
				if err := d.Skip(); err != nil {
					return nil, false, err
				}
				return tt.Name.Local == "true", false, nil
			case "array":
				var arr []plistValue
				for {
					v, end, err := plistNext(d)
					if err != nil {
						return nil, false, err
					}
					if end {
						return arr, false, nil
					}
					arr = append(arr, v)
				}
			case "dict":
				m := map[string]plistValue{}
				for {
					tok, err := d.Token()
					if err != nil {
						return nil, false, err
					}
					switch kt := tok.(type) {
					case xml.EndElement:
						return m, false, nil
					case xml.StartElement:
						if kt.Name.Local != "key" {
							return nil, false, fmt.Errorf("<%s> where a <key> belongs in a <dict>", kt.Name.Local)
						}
						var k string
						if err := d.DecodeElement(&k, &kt); err != nil {
							return nil, false, err
						}
						v, end, err := plistNext(d)
						if err != nil {
							return nil, false, fmt.Errorf("key %q: %w", k, err)
						}
						if end {
							return nil, false, fmt.Errorf("key %q has no value", k)
						}
						m[k] = v
					}
				}
			default:
				return nil, false, fmt.Errorf("unexpected <%s>", tt.Name.Local)
			}
		}
	}
}

func TestLaunchdPlist(t *testing.T) {
	const file = "contrib/launchd/com.oeproxy.oeproxy.plist"
	v, err := decodePlist(strings.NewReader(readRepoFile(t, file)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	m, ok := v.(map[string]plistValue)
	if !ok {
		t.Fatalf("%s: top-level value is %T, want a dict", file, v)
	}
	want := map[string]plistValue{
		"Label":             "com.oeproxy.oeproxy",
		"ProgramArguments":  []plistValue{"/usr/local/bin/oeproxy", "serve"},
		"RunAtLoad":         true,
		"KeepAlive":         true,
		"StandardOutPath":   "__HOME__/Library/Logs/oeproxy.log",
		"StandardErrorPath": "__HOME__/Library/Logs/oeproxy.log",
		"Umask":             "63", // 0077
	}
	for k, w := range want {
		if got := fmt.Sprint(m[k]); got != fmt.Sprint(w) {
			t.Errorf("%s: %s = %s, want %s", file, k, got, w)
		}
	}
	if env, ok := m["EnvironmentVariables"].(map[string]plistValue); ok {
		var names []string
		for k := range env {
			names = append(names, k)
		}
		checkEnvNames(t, file, strings.Join(names, " "))
	}
	// xmllint, when installed, checks well-formedness independently of this decoder.
	if xl, err := exec.LookPath("xmllint"); err == nil {
		if out, err := exec.Command(xl, "--noout", "--nonet", filepath.Join("..", file)).CombinedOutput(); err != nil {
			t.Errorf("xmllint %s: %v\n%s", file, err, out)
		}
	}
}
