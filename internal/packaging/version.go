// Package packaging builds vigil's release artefacts: the version string of a
// source tree, a binary stamped with it, and the Debian package
// (vigil_<version>_<arch>.deb) with its units, man pages and completions.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// DirtySuffix marks a version built from a tree with changes no commit
// holds. The hyphen is Debian's revision separator: "1.2.3-dirty" reads as
// upstream version 1.2.3, revision "dirty", which dpkg accepts.
const DirtySuffix = "-dirty"

// describePattern is `git describe --long` output of a release tag vX.Y.Z
// (or a pre-release vX.Y.Z-rc1): the tag, the commits since it and the
// abbreviated commit name.
var describePattern = regexp.MustCompile(`^v([0-9][0-9A-Za-z.+~-]*)-([0-9]+)-g([0-9a-f]+)$`)

// treeState is what the version is made of, read from git.
type treeState struct {
	describe   string // `git describe --tags --long --match v[0-9]*`, "" when no release tag is reachable
	commitDate string // committer date of HEAD, YYYYMMDD in UTC
	shortSHA   string
	dirty      bool
}

// Version returns the Debian version of the source tree at dir:
//
//	1.2.3                      at the release tag v1.2.3
//	1.2.3+git4.gabc1234        four commits after v1.2.3
//	1.2.3~rc1                  at v1.2.3-rc1 (before 1.2.3, as dpkg orders "~")
//	0.0.0~git20261202.abc1234  no release tag yet (commit date, UTC)
//
// each followed by DirtySuffix when the tree has uncommitted changes or
// untracked files (an untracked source file changes the build as much as an
// edited one; ignored files such as bin/ do not count).
func Version(ctx context.Context, dir string) (string, error) {
	st, err := readTreeState(ctx, dir)
	if err != nil {
		return "", err
	}
	return st.version()
}

// debianVersionPattern is what dpkg accepts as a version without an epoch:
// a leading digit, then letters, digits and . + ~ - (the last hyphen starts
// the revision).
var debianVersionPattern = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~-]*$`)

// CheckVersion rejects a version given by hand (make deb VERSION=...) that
// dpkg would not accept or that would not survive the -ldflags command line.
func CheckVersion(v string) error {
	if !debianVersionPattern.MatchString(v) || strings.HasSuffix(v, "-") {
		return fmt.Errorf("version %q: a Debian version begins with a digit and holds only letters, digits and . + ~ -", v)
	}
	return nil
}

func (st treeState) version() (string, error) {
	var v string
	switch {
	case st.describe == "":
		v = fmt.Sprintf("0.0.0~git%s.%s", st.commitDate, st.shortSHA)
	default:
		m := describePattern.FindStringSubmatch(st.describe)
		if m == nil {
			return "", fmt.Errorf("git describe %q: not a release tag vX.Y.Z followed by -N-gSHA; a Debian version holds only letters, digits and . + ~ -", st.describe)
		}
		// A hyphen would end Debian's upstream version and start its
		// revision.
		v = strings.ReplaceAll(m[1], "-", "~")
		if m[2] != "0" {
			v = fmt.Sprintf("%s+git%s.g%s", v, m[2], m[3])
		}
	}
	if st.dirty {
		v += DirtySuffix
	}
	return v, CheckVersion(v)
}

func readTreeState(ctx context.Context, dir string) (treeState, error) {
	var st treeState
	var err error
	if st.shortSHA, err = git(ctx, dir, "rev-parse", "--short=12", "HEAD"); err != nil {
		return st, err
	}
	built, err := commitTime(ctx, dir)
	if err != nil {
		return st, err
	}
	// The commit's date, not today's: the same commit gives the same
	// version wherever and whenever it is built.
	st.commitDate = built.Format("20060102")
	tags, err := git(ctx, dir, "tag", "--list", "v[0-9]*", "--merged", "HEAD")
	if err != nil {
		return st, err
	}
	if tags != "" {
		if st.describe, err = git(ctx, dir, "describe", "--tags", "--long", "--abbrev=12", "--match", "v[0-9]*"); err != nil {
			return st, err
		}
	}
	status, err := git(ctx, dir, "status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return st, err
	}
	st.dirty = status != ""
	return st, nil
}

// git runs one git command in dir and returns its trimmed output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
