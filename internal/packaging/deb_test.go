package packaging

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPackagedUnitsRunTheInstalledBinary(t *testing.T) {
	example, err := os.ReadFile("../../examples/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	single, instance, err := PackagedUnits(string(example))
	if err != nil {
		t.Fatalf("PackagedUnits(examples/vigil.service): %v", err)
	}
	for name, want := range map[string]string{
		"vigil.service":  "\nExecStart=/usr/bin/vigil agent --config /etc/vigil/vigil.yaml\n",
		"vigil@.service": "\nExecStart=/usr/bin/vigil agent --config /etc/vigil/%i.yaml\n",
	} {
		unit := map[string]string{"vigil.service": single, "vigil@.service": instance}[name]
		if !strings.Contains(unit, want) {
			t.Errorf("%s lacks %q", name, strings.TrimSpace(want))
		}
		if strings.Contains(unit, "/usr/local/bin") {
			t.Errorf("%s still names /usr/local/bin", name)
		}
		// The example's hardening is installed as it is documented.
		for _, line := range []string{"Restart=on-failure", "CapabilityBoundingSet=CAP_NET_ADMIN", "ProtectSystem=strict", "KillMode=process"} {
			if !strings.Contains(unit, "\n"+line) {
				t.Errorf("%s lacks the example's %s", name, line)
			}
		}
	}

	changed := strings.Replace(string(example), "/usr/local/bin/vigil agent", "/opt/vigil agent", 1)
	if _, _, err := PackagedUnits(changed); err == nil {
		t.Fatal("an example unit whose ExecStart the packaging does not know was accepted")
	}
}

// TestDebianPackageInstallsAndPurgesCleanly builds the package as `make deb`
// does, installs it on this machine with dpkg, checks what an administrator
// uses (the binary, the units, completions, man pages, /etc/vigil), then
// purges it and checks that nothing of it is left but the administrator's
// own file.
func TestDebianPackageInstallsAndPurgesCleanly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("installing a package needs root: run the test as root (CI does)")
	}
	if status := packageStatus(t); status != "" {
		t.Fatalf("a package named vigil is on this machine (%s): this test installs and purges its own, so remove that one first (dpkg --purge vigil)", status)
	}
	if _, err := os.Lstat(ConfigDir); err == nil {
		t.Fatalf("%s exists, without a vigil package: this test's purge would remove it if empty; move it aside first", ConfigDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	source, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	version, err := Version(ctx, source)
	if err != nil {
		t.Fatal(err)
	}
	deb, err := BuildDeb(ctx, Options{SourceDir: source, Version: version, OutDir: t.TempDir()})
	if err != nil {
		t.Fatalf("build the package: %v", err)
	}
	if want := "vigil_" + version + "_"; !strings.HasPrefix(filepath.Base(deb), want) {
		t.Fatalf("package file %s, want a name starting %s", deb, want)
	}

	contents := packageContents(ctx, t, deb)
	existedBefore := map[string]bool{}
	for _, p := range contents {
		if _, err := os.Lstat(p); err == nil {
			existedBefore[p] = true
		}
	}
	adminFile := filepath.Join(ConfigDir, "admin-test.yaml")
	_, err = os.Lstat(wantsDir)
	wantsDirExisted := err == nil
	enableLinks := []string{filepath.Join(wantsDir, "vigil.service"), filepath.Join(wantsDir, "vigil@main.service")}
	t.Cleanup(func() {
		if packageStatus(t) != "" {
			if out, err := exec.Command("dpkg", "--purge", "vigil").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge vigil: %v: %s", err, out)
			}
		}
		// Only what this test made: /etc/vigil did not exist before it.
		if err := os.Remove(adminFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
		if err := os.Remove(ConfigDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
		for _, link := range enableLinks {
			if target, err := os.Readlink(link); err == nil && strings.HasPrefix(target, UnitDir+"/vigil") {
				os.Remove(link)
			}
		}
		if !wantsDirExisted {
			os.Remove(wantsDir) // only if empty: another unit may have been enabled meanwhile
		}
	})

	run(ctx, t, "dpkg", "-i", deb)
	listed := strings.Fields(run(ctx, t, "dpkg", "-L", "vigil"))
	for _, p := range contents {
		if !slices.Contains(listed, p) {
			t.Errorf("dpkg -L vigil lacks %s, which the package contains (a dpkg path-exclude on this machine?)", p)
		}
	}

	t.Run("version", func(t *testing.T) {
		revision, err := git(ctx, source, "rev-parse", "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		out := run(ctx, t, BinaryPath, "version")
		if want := "vigil " + version + " (commit " + revision + ", "; !strings.HasPrefix(out, want) {
			t.Fatalf("%s version printed %q, want it to start with %q", BinaryPath, out, want)
		}
	})

	t.Run("config directory", func(t *testing.T) {
		fi, err := os.Stat(ConfigDir)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: mode %v, want a directory with mode 0700", ConfigDir, fi.Mode())
		}
	})

	t.Run("units verify", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Fatalf("systemd-analyze (Debian package systemd) is needed to verify the units: %v", err)
		}
		// The template is verified through an instance; verify also checks
		// that ExecStart's binary is executable and that the man page in
		// Documentation= is installed.
		for _, unit := range []string{filepath.Join(UnitDir, "vigil.service"), "vigil@main.service"} {
			out, err := exec.CommandContext(ctx, "systemd-analyze", "verify", unit).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze verify %s: %v: %s", unit, err, out)
			}
			// verify loads the units ours depend on (multi-user.target and
			// what it pulls in) and warns about other packages' units: only
			// lines about ours count.
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "vigil") {
					t.Errorf("systemd-analyze verify %s: %s", unit, line)
				}
			}
		}
	})

	t.Run("completions", func(t *testing.T) {
		out := run(ctx, t, "bash", "-c", "source "+BashCompletion+" && complete -p vigil")
		if !strings.Contains(out, "__start_vigil vigil") {
			t.Errorf("bash: complete -p vigil after sourcing %s printed %q", BashCompletion, out)
		}
		// The scripts ask the binary for candidates.
		if out := run(ctx, t, BinaryPath, "__complete", "ctl", "sw"); !strings.Contains(out, "switchover") {
			t.Errorf("vigil __complete ctl sw printed %q, want switchover", out)
		}
		for file, want := range map[string]string{ZshCompletion: "#compdef vigil", FishCompletion: "complete -c vigil "} {
			script, err := os.ReadFile(file)
			if err != nil {
				t.Error(err)
				continue
			}
			if !bytes.Contains(script, []byte(want)) {
				t.Errorf("%s does not contain %q", file, want)
			}
		}
	})

	t.Run("man pages", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, "man", "vigil-ctl-switchover")
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=100", "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("man vigil-ctl-switchover: %v: %s", err, out)
		}
		for _, want := range []string{"vigil-ctl-switchover - ", "vigil ctl switchover [--to NODE]", "--to"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("man vigil-ctl-switchover lacks %q:\n%s", want, out)
			}
		}
		for _, page := range []string{"vigil", "vigil-agent", "vigil-ctl", "vigil-config-check"} {
			if out, err := exec.CommandContext(ctx, "man", "-w", page).CombinedOutput(); err != nil {
				t.Errorf("man -w %s: %v: %s", page, err, out)
			}
		}
	})

	// An administrator enables the units; once the purge has removed them
	// these links would point at nothing, so the purge removes them too
	// (as Debian's deb-systemd-helper does).
	run(ctx, t, "systemctl", "enable", "vigil.service", "vigil@main.service")
	for _, link := range enableLinks {
		if _, err := os.Lstat(link); err != nil {
			t.Fatalf("systemctl enable did not make %s: %v", link, err)
		}
	}
	writeTestFile(t, adminFile, "# the administrator's own file\n")
	run(ctx, t, "dpkg", "--purge", "vigil")
	if status := packageStatus(t); status != "" {
		t.Fatalf("after dpkg --purge vigil the package is still known to dpkg: %s", status)
	}
	for _, p := range listed {
		_, err := os.Lstat(p)
		exists := err == nil
		switch {
		case existedBefore[p] && !exists:
			t.Errorf("%s existed before the install and is gone after the purge", p)
		case p == ConfigDir && !exists:
			t.Errorf("%s is gone after the purge though it held the administrator's file", p)
		case !existedBefore[p] && p != ConfigDir && exists:
			t.Errorf("%s, installed by the package, is left after dpkg --purge", p)
		}
	}
	for _, link := range enableLinks {
		if _, err := os.Lstat(link); err == nil {
			t.Errorf("%s, made by systemctl enable, is left after dpkg --purge and points at a removed unit", link)
		}
	}
	if text, err := os.ReadFile(adminFile); err != nil || string(text) != "# the administrator's own file\n" {
		t.Errorf("the administrator's %s after the purge: %q, %v", adminFile, text, err)
	}
}

// wantsDir holds the links `systemctl enable` makes for the units'
// WantedBy=multi-user.target.
const wantsDir = "/etc/systemd/system/multi-user.target.wants"

// packageStatus is dpkg's status of a package named vigil, "" when dpkg
// knows none (never installed, or purged).
func packageStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "vigil").Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return "" // no package of that name
	}
	if err != nil {
		t.Fatalf("dpkg-query -W vigil: %v", err)
	}
	status := strings.TrimSpace(string(out))
	if strings.HasSuffix(status, " not-installed") {
		return ""
	}
	return status
}

// packageContents lists the paths in the package's data archive as dpkg -L
// prints them: absolute, without a trailing slash, "/." for the root.
func packageContents(ctx context.Context, t *testing.T, deb string) []string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	archive, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	var paths []string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s's data archive: %v", deb, err)
		}
		p := path.Clean("/" + h.Name)
		if p == "/" {
			p = "/."
		}
		paths = append(paths, p)
	}
	return paths
}

func run(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
