package e2e

import (
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oeproxy/oeproxy/oesim"
)

var adminRE = regexp.MustCompile(`"admin":"(http://127\.0\.0\.1:\d+)"`)

// adminURL finds the admin listener's address in the daemon's log (admin.listen is 127.0.0.1:0 here).
func (s *stack) adminURL(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := adminRE.FindStringSubmatch(s.log()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin address in the daemon log:\n%s", s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminLogin is a fresh one-time login address for the admin page, from `oeproxy admin` (each Chromium run is a
// new browser profile, so each needs its own).
func (s *stack) adminLogin(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(s.bin, "admin")
	cmd.Env = s.env
	out, err := cmd.Output()
	u := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(u, s.adminURL(t)+"/login?token=") {
		t.Fatalf("oeproxy admin: %v %q\ndaemon log:\n%s", err, out, s.log())
	}
	return u
}

// TestChromiumAdminPage renders the admin page of a daemon serving both oesim printers in headless Chromium,
// keeps a screenshot in e2e/out/admin.png, and runs the connect button's browser part in Chromium: the
// portal (oesim, reached through --host-resolver-rules) sends Chromium back to the admin server's callback,
// and the new printer is then listed.
func TestChromiumAdminPage(t *testing.T) {
	chromium := need(t, "chromium", "chromium-browser", "google-chrome")
	s := startStack(t, oesim.Options{AutoApprove: true})
	var ls []linked
	for _, p := range s.sim.Printers() {
		ls = append(ls, s.connect(t, p, map[oesim.PrinterKind]string{
			oesim.KindOctoPrint: "octoprint", oesim.KindMoonraker: "moonraker"}[p.Kind]))
	}
	admin := s.adminURL(t)

	dom, err := runChromium(t, chromium, "--virtual-time-budget=3000", "--dump-dom", s.adminLogin(t))
	if err != nil {
		t.Fatalf("admin page in Chromium: %v", err)
	}
	page := string(dom)
	for _, l := range ls {
		for _, want := range []string{`id="printer-` + l.name + `"`, `href="` + l.url + `"`, l.printer.Name} {
			if !strings.Contains(page, want) {
				t.Errorf("the rendered admin page lacks %q", want)
			}
		}
	}
	if !strings.Contains(page, `action="/connect"`) {
		t.Error("the rendered admin page has no connect form")
	}
	checkNoSecretIn(t, s, "the rendered admin page", page)

	outDir, err := filepath.Abs("out")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(outDir, "admin.png")
	_ = os.Remove(shot)
	if _, err := runChromium(t, chromium, "--virtual-time-budget=3000", "--window-size=1100,1500", "--screenshot="+shot, s.adminLogin(t)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	checkScreenshot(t, shot, 1100, 1500)

	// The connect button: the form post (with the page's cookie and token) is made here; Chromium plays the
	// browser from the portal on.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Transport: &http.Transport{}, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(s.adminLogin(t)) // a redirect to / with the session cookie
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin login: %s", resp.Status)
	}
	if resp, err = hc.Get(admin + "/"); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the admin page:\n%s", body)
	}
	port := freePort(t)
	resp, err = hc.PostForm(admin+"/connect", url.Values{"csrf": {string(m[1])}, "name": {"chromium-mk4"}, "port": {strconv.Itoa(port)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	portal := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(portal, s.sim.PortalURL) {
		t.Fatalf("POST /connect: %s, Location %q", resp.Status, portal)
	}
	_, simPort, _ := net.SplitHostPort(s.sim.Addr)
	dom, err = runChromium(t, chromium, "--virtual-time-budget=5000", "--ignore-certificate-errors",
		"--host-resolver-rules=MAP "+s.sim.Domain+" 127.0.0.1:"+simPort+", EXCLUDE 127.0.0.1",
		"--dump-dom", portal)
	if err != nil {
		t.Fatalf("portal in Chromium: %v", err)
	}
	if !strings.Contains(string(dom), "Connected") {
		t.Fatalf("Chromium did not end on the callback's success page:\n%s\ndaemon log:\n%s", lastLines(string(dom), 30), s.log())
	}
	checkNoSecretIn(t, s, "the callback page", string(dom))
	dom, err = runChromium(t, chromium, "--virtual-time-budget=3000", "--dump-dom", s.adminLogin(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := `href="http://127.0.0.1:` + strconv.Itoa(port) + `"`; !strings.Contains(string(dom), `id="printer-chromium-mk4"`) || !strings.Contains(string(dom), want) {
		t.Errorf("the admin page does not list the printer connected through the button:\n%s", lastLines(string(dom), 60))
	}
	checkNoSecretIn(t, s, "the admin page after connect", string(dom))
	s.checkNoSecrets(t, ls...)
}

// checkNoSecretIn fails when text holds any credential oesim issued (Basic user names included).
func checkNoSecretIn(t *testing.T, s *stack, what, text string) {
	t.Helper()
	for _, c := range s.sim.Connections() {
		cr := c.Credentials()
		for _, v := range []string{cr.BasicUser, cr.BasicPassword, cr.BearerToken, cr.AppAPIToken, cr.OctoPrintAPIKey} {
			if v != "" && strings.Contains(text, v) {
				t.Errorf("%s shows a secret of connection %s", what, c.Printer().Name)
			}
		}
	}
}

// checkScreenshot checks that file is a w×h PNG with something drawn on it (not one flat colour).
func checkScreenshot(t *testing.T, file string, w, h int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %dx%d, want %dx%d", file, b.Dx(), b.Dy(), w, h)
	}
	if dark := darkPixels(img); dark < 500 {
		t.Errorf("%s has %d dark pixels: the page looks empty", file, dark)
	}
	t.Logf("screenshot kept at %s", file)
}

func darkPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (r+g+bl)/3 < 0x4000 {
				n++
			}
		}
	}
	return n
}
