package packaging

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Where the package puts things on the installed system.
const (
	BinaryPath     = "/usr/bin/vigil"
	UnitDir        = "/lib/systemd/system"
	ConfigDir      = "/etc/vigil"
	ManDir         = "/usr/share/man/man1"
	BashCompletion = "/usr/share/bash-completion/completions/vigil"
	ZshCompletion  = "/usr/share/zsh/vendor-completions/_vigil"
	FishCompletion = "/usr/share/fish/vendor_completions.d/vigil.fish"
	DocDir         = "/usr/share/doc/vigil"
	ExamplesDir    = DocDir + "/examples"
)

// The variables `vigil version` prints, set with -ldflags -X.
const (
	versionSymbol = "github.com/vigil-ha/vigil/internal/cli.version"
	commitSymbol  = "github.com/vigil-ha/vigil/internal/cli.commit"
)

// Options of one package build.
type Options struct {
	// SourceDir is the repository: cmd/vigil, examples/ and packaging/.
	SourceDir string
	// Version is the package's and the binary's version (see Version).
	Version string
	// OutDir receives vigil_<version>_<arch>.deb.
	OutDir string
}

// BuildBinary compiles cmd/vigil from sourceDir into out, for the host's
// architecture, with `vigil version` printing version. `make build` and the
// package get the same binary: without the build machine's paths
// (-trimpath) and without the DWARF and symbol tables (-s -w; Debian strips
// packaged binaries too), which takes a third off its size; panics still
// print file and line.
func BuildBinary(ctx context.Context, sourceDir, version, out string) error {
	if err := CheckVersion(version); err != nil {
		return fmt.Errorf("build vigil: %w", err)
	}
	outAbs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("build vigil %s: %w", version, err)
	}
	revision, err := git(ctx, sourceDir, "rev-parse", "HEAD")
	if err != nil {
		return fmt.Errorf("build vigil %s: %w", version, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X "+versionSymbol+"="+version+" -X "+commitSymbol+"="+revision,
		"-o", outAbs, "./cmd/vigil")
	cmd.Dir = sourceDir
	// The package is for the machine that runs the build's own tools (the
	// man pages come from running the binary): no cross-compilation.
	cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build vigil %s: %w: %s", version, err, bytes.TrimSpace(out))
	}
	return nil
}

// DebianArch is Debian's name of a Go architecture.
func DebianArch(goarch string) (string, error) {
	switch goarch {
	case "amd64", "arm64", "riscv64", "s390x", "loong64":
		return goarch, nil
	case "386":
		return "i386", nil
	case "arm":
		return "armhf", nil
	case "ppc64le":
		return "ppc64el", nil
	}
	return "", fmt.Errorf("no Debian architecture for GOARCH %s", goarch)
}

// BuildDeb builds the binary, generates its man pages and completions by
// running it, stages the package's tree and writes
// OutDir/vigil_<version>_<arch>.deb with dpkg-deb. It returns the path of
// the package.
func BuildDeb(ctx context.Context, o Options) (string, error) {
	arch, err := DebianArch(runtime.GOARCH)
	if err != nil {
		return "", err
	}
	built, err := commitTime(ctx, o.SourceDir)
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "vigil-deb-")
	if err != nil {
		return "", fmt.Errorf("stage package: %w", err)
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, "root")
	generated := filepath.Join(stage, "generated")

	binary := filepath.Join(root, BinaryPath)
	if err := BuildBinary(ctx, o.SourceDir, o.Version, binary); err != nil {
		return "", err
	}
	// The man pages' date is the commit's, so two builds of one commit
	// produce the same pages.
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(built.Unix(), 10)}
	if err := runBinary(ctx, binary, env, "docs", "man", "--dir", filepath.Join(generated, "man")); err != nil {
		return "", err
	}
	if err := runBinary(ctx, binary, env, "docs", "completions", "--dir", filepath.Join(generated, "completions")); err != nil {
		return "", err
	}

	steps := []func() error{
		func() error { return stageManPages(filepath.Join(generated, "man"), root) },
		func() error { return stageCompletions(filepath.Join(generated, "completions"), root) },
		func() error { return stageUnits(o.SourceDir, root) },
		func() error {
			return copyTree(filepath.Join(o.SourceDir, "examples"), filepath.Join(root, ExamplesDir))
		},
		func() error { return stageDocs(o.SourceDir, root, o.Version, built) },
		func() error { return os.MkdirAll(filepath.Join(root, ConfigDir), 0o700) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return "", fmt.Errorf("stage package: %w", err)
		}
	}
	if err := stageControl(o.SourceDir, root, o.Version, arch); err != nil {
		return "", fmt.Errorf("stage package control files: %w", err)
	}
	if err := normalizeModes(root); err != nil {
		return "", fmt.Errorf("stage package: %w", err)
	}

	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", o.OutDir, err)
	}
	deb := filepath.Join(o.OutDir, fmt.Sprintf("vigil_%s_%s.deb", o.Version, arch))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--build", "--root-owner-group", root, deb)
	cmd.Env = append(cmd.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	return deb, nil
}

func runBinary(ctx context.Context, binary string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cmd.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vigil %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func commitTime(ctx context.Context, dir string) (time.Time, error) {
	out, err := git(ctx, dir, "log", "-1", "--format=%ct")
	if err != nil {
		return time.Time{}, err
	}
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit time %q: %w", out, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// stageManPages gzips every generated page into the man1 directory.
func stageManPages(from, root string) error {
	pages, err := filepath.Glob(filepath.Join(from, "*.1"))
	if err != nil {
		return err
	}
	if len(pages) == 0 {
		return fmt.Errorf("no man pages generated in %s", from)
	}
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(root, ManDir, filepath.Base(page)+".gz"), gzipped(text)); err != nil {
			return err
		}
	}
	return nil
}

func stageCompletions(from, root string) error {
	for generated, installed := range map[string]string{
		"vigil.bash": BashCompletion,
		"_vigil":     ZshCompletion,
		"vigil.fish": FishCompletion,
	} {
		script, err := os.ReadFile(filepath.Join(from, generated))
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(root, installed), script); err != nil {
			return err
		}
	}
	return nil
}

func stageUnits(sourceDir, root string) error {
	example, err := os.ReadFile(filepath.Join(sourceDir, "examples", "vigil.service"))
	if err != nil {
		return err
	}
	single, instance, err := PackagedUnits(string(example))
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(root, UnitDir, "vigil.service"), []byte(single)); err != nil {
		return err
	}
	return writeFile(filepath.Join(root, UnitDir, "vigil@.service"), []byte(instance))
}

// stageDocs writes the copyright file and a changelog entry for this build,
// which Debian expects of every package.
func stageDocs(sourceDir, root, version string, built time.Time) error {
	copyright, err := os.ReadFile(filepath.Join(sourceDir, "packaging", "debian", "copyright"))
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(root, DocDir, "copyright"), copyright); err != nil {
		return err
	}
	changelog := fmt.Sprintf("vigil (%s) unstable; urgency=medium\n\n"+
		"  * Built from the source tree's commit of %s; the changes are the\n"+
		"    repository's history (https://github.com/vigil-ha/vigil).\n\n"+
		" -- Vigil maintainers <vigil@vigil-ha.invalid>  %s\n",
		version, built.Format("2006-01-02"), built.Format(time.RFC1123Z))
	return writeFile(filepath.Join(root, DocDir, "changelog.gz"), gzipped([]byte(changelog)))
}

// gzipped compresses data with no file name or time in the gzip header, so
// that the same input gives the same bytes (as dh_compress does). Writing to
// memory cannot fail.
func gzipped(data []byte) []byte {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return gz.Bytes()
}

// stageControl writes DEBIAN/: control (from packaging/debian/control with
// this build's version, architecture and size), md5sums, and the
// maintainer scripts.
func stageControl(sourceDir, root, version, arch string) error {
	size, sums, err := measure(root)
	if err != nil {
		return err
	}
	debian := filepath.Join(root, "DEBIAN")
	if err := os.Mkdir(debian, 0o755); err != nil {
		return err
	}
	tmpl, err := template.ParseFiles(filepath.Join(sourceDir, "packaging", "debian", "control"))
	if err != nil {
		return err
	}
	var control bytes.Buffer
	if err := tmpl.Execute(&control, map[string]any{"Version": version, "Arch": arch, "InstalledSizeKiB": size}); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(debian, "control"), control.Bytes()); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(debian, "md5sums"), []byte(sums)); err != nil {
		return err
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		text, err := os.ReadFile(filepath.Join(sourceDir, "packaging", "debian", script))
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(debian, script), text); err != nil {
			return err
		}
	}
	return nil
}

// measure returns the Installed-Size in KiB (each file rounded up, one per
// directory, as dpkg-gencontrol counts) and the md5sums file of root.
func measure(root string) (int64, string, error) {
	var kib int64
	var lines []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			kib++
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		kib += (int64(len(data)) + 1023) / 1024
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%x  %s", md5.Sum(data), filepath.ToSlash(rel)))
		return nil
	})
	sort.Strings(lines)
	return kib, strings.Join(lines, "\n") + "\n", err
}

// normalizeModes gives the staged tree the modes the package installs,
// whatever the builder's umask: directories 0755, files 0644, the binary
// and the maintainer scripts 0755, and the configuration directory 0700 (it
// will hold passwords and keys).
func normalizeModes(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		installed := "/" + filepath.ToSlash(rel)
		mode := fs.FileMode(0o644)
		switch installed {
		case ConfigDir:
			mode = 0o700
		case BinaryPath, "/DEBIAN/postinst", "/DEBIAN/prerm", "/DEBIAN/postrm":
			mode = 0o755
		default:
			if d.IsDir() {
				mode = 0o755
			}
		}
		return os.Chmod(path, mode)
	})
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only regular files are packaged", path)
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(to, rel), data)
	})
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// The lines of examples/vigil.service the packaged units change. The
// example documents a manual install under /usr/local; the package installs
// under /usr and adds the man page to the unit's documentation (which
// `systemd-analyze verify` checks is installed).
const (
	exampleExecStart     = "ExecStart=/usr/local/bin/vigil agent --config /etc/vigil/vigil.yaml"
	exampleDocumentation = "Documentation=https://github.com/vigil-ha/vigil"
	exampleDescription   = "Description=Vigil high-availability agent for PostgreSQL"
	packagedDocs         = "Documentation=man:vigil-agent(1) https://github.com/vigil-ha/vigil"
)

const unitHeader = `# Installed by the vigil package; an upgrade replaces this file. Change a
# setting with a drop-in (systemctl edit %s), not here. Every setting is
# explained in /usr/share/doc/vigil/examples/vigil.service.
`

const templateHeader = `#
# One agent per cluster this host is a node of: vigil@NAME runs
# vigil agent --config /etc/vigil/NAME.yaml. Instances share /var/lib/vigil
# and the host's network, so give each configuration its own
# dcs.embedded.data_dir (e.g. /var/lib/vigil/NAME/etcd), etcd ports and
# api.listen address.
`

// PackagedUnits derives the package's vigil.service and vigil@.service from
// the documented example unit, so that the hardening explained there is
// the hardening installed. It fails when a line it changes is no longer in
// the example, rather than ship a unit pointing at the wrong binary.
func PackagedUnits(example string) (single, instance string, err error) {
	start := strings.Index(example, "[Unit]\n")
	if start < 0 {
		return "", "", errors.New("examples/vigil.service: no [Unit] section")
	}
	body := example[start:]
	for _, line := range []string{exampleExecStart, exampleDocumentation, exampleDescription} {
		if n := strings.Count(body, "\n"+line+"\n"); n != 1 {
			return "", "", fmt.Errorf("examples/vigil.service: expected the line %q once, found it %d times", line, n)
		}
	}
	body = strings.Replace(body, exampleDocumentation, packagedDocs, 1)
	singleBody := strings.Replace(body, exampleExecStart, strings.Replace(exampleExecStart, "/usr/local/bin/vigil", BinaryPath, 1), 1)
	templateBody := strings.Replace(body, exampleExecStart, "ExecStart="+BinaryPath+" agent --config "+ConfigDir+"/%i.yaml", 1)
	templateBody = strings.Replace(templateBody, exampleDescription, exampleDescription+" (cluster %i)", 1)
	single = fmt.Sprintf(unitHeader, "vigil") + "\n" + singleBody
	instance = fmt.Sprintf(unitHeader, "vigil@NAME") + templateHeader + "\n" + templateBody
	return single, instance, nil
}
