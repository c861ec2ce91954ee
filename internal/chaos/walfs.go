package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/pgctl"
)

// walFSSize is the size of the filesystem each database host's WAL lives
// on when the campaign injects disk-full. It must hold what the servers
// keep in normal operation, or the campaign would fill it by itself: the
// lab's wal_keep_size (512 MB), the segments recycled for reuse
// (min_wal_size, 80 MB) and the WAL written since the last checkpoint.
const walFSSize = 1 << 30

// fillerName is the file that fills a WAL filesystem, next to the WAL
// directory on the same filesystem (never inside it, where pg_rewind
// would see it).
const fillerName = "vigil-chaos-filler"

// walFS is a node's small filesystem: a tmpfs at dir, with the server's
// WAL directory in dir/<wal dir> and the data directory's WAL directory a
// symbolic link to it.
type walFS struct {
	node string
	dir  string
	// wal is the WAL directory on the filesystem.
	wal string
	// link is the data directory's WAL directory (the symbolic link).
	link string
}

// walDirName is the flavor's WAL directory: pg_wal, sys_wal.
func (r *campaign) walDirName() string { return r.l.Flavor().SQLPrefix + "wal" }

// moveWALToSmallFilesystems puts every node's WAL directory on a tmpfs of
// its own under dir, so that disk-full can fill it for real: each server
// is stopped, its WAL copied onto the new filesystem, the directory
// replaced with a symbolic link, and the server started again. It runs
// before the agents start; teardown unmounts what it mounted.
func (r *campaign) moveWALToSmallFilesystems(ctx context.Context, dir string) error {
	for _, n := range r.nodes {
		if err := r.moveWAL(ctx, n, filepath.Join(dir, "wal-"+n.Name)); err != nil {
			return fmt.Errorf("move the WAL of %s to a small filesystem: %w", n.Name, err)
		}
	}
	return nil
}

func (r *campaign) moveWAL(ctx context.Context, n lab.Node, dir string) error {
	link := filepath.Join(n.DataDir, r.walDirName())
	st, err := os.Lstat(link)
	if err != nil {
		return err
	}
	owner, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner", link)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%d,gid=%d", walFSSize, owner.Uid, owner.Gid)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount a tmpfs (%s) at %s: %w", opts, dir, err)
	}
	w := walFS{node: n.Name, dir: dir, wal: filepath.Join(dir, r.walDirName()), link: link}
	r.walFS = append(r.walFS, w)
	return r.relocateWAL(ctx, n, w)
}

// relocateWAL stops n's server, replaces whatever its WAL filesystem held
// with the data directory's WAL directory, replaces that with a symbolic
// link to it, and starts the server again.
func (r *campaign) relocateWAL(ctx context.Context, n lab.Node, w walFS) error {
	st, err := os.Lstat(w.link)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", w.link)
	}
	owner, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner", w.link)
	}
	if err := r.l.Stop(ctx, n, pgctl.Fast); err != nil {
		return err
	}
	if err := os.RemoveAll(w.wal); err != nil {
		return err
	}
	if err := copyTree(w.link, w.wal); err != nil {
		return err
	}
	if err := os.RemoveAll(w.link); err != nil {
		return err
	}
	if err := os.Symlink(w.wal, w.link); err != nil {
		return err
	}
	if err := os.Lchown(w.link, int(owner.Uid), int(owner.Gid)); err != nil {
		return err
	}
	return r.l.Start(ctx, n)
}

// restoreWALFilesystems puts back on its small filesystem the WAL of every
// standby whose data directory a base-backup rejoin replaced (it holds a
// WAL directory of its own on the ordinary disk), so that disk-full keeps
// hitting the WAL: its agent is killed, its server stopped, the WAL moved
// and the server and agent started again, as an operator would after
// such a rejoin. primary is left alone. It returns the nodes it repaired.
func (r *campaign) restoreWALFilesystems(ctx context.Context, primary string) ([]string, error) {
	var done []string
	for _, w := range r.walFS {
		if w.node == primary {
			continue
		}
		if got, err := filepath.EvalSymlinks(w.link); err != nil || got == w.wal {
			continue
		}
		n, err := r.l.Node(w.node)
		if err != nil {
			return done, err
		}
		r.c.KillAgent(n.Name)
		if err := r.relocateWAL(ctx, n, w); err != nil {
			return done, errors.Join(fmt.Errorf("move the WAL of %s back to its small filesystem: %w", n.Name, err), r.startAgent(n.Name))
		}
		if err := r.startAgent(n.Name); err != nil {
			return done, err
		}
		done = append(done, n.Name)
	}
	return done, nil
}

// copyTree copies the directory src (regular files and directories only)
// to dst, keeping modes and owners.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner", path)
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, info.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(path, to, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: neither a file nor a directory", path)
		}
		if err := os.Chmod(to, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Lchown(to, int(st.Uid), int(st.Gid))
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// unmountWAL unmounts the WAL filesystems; the servers must be stopped.
// One still busy is detached (it goes when its last file is closed), so
// that nothing stays mounted under the lab directory.
func (r *campaign) unmountWAL() error {
	var errs []error
	var left []walFS
	for _, w := range r.walFS {
		err := syscall.Unmount(w.dir, 0)
		if errors.Is(err, syscall.EBUSY) {
			r.log.Warn("WAL filesystem busy: detaching it", "dir", w.dir)
			err = syscall.Unmount(w.dir, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) { // EINVAL: not mounted
			errs = append(errs, fmt.Errorf("unmount %s: %w", w.dir, err))
			left = append(left, w)
		}
	}
	r.walFS = left
	return errors.Join(errs...)
}

// walFSOf returns node's WAL filesystem, checking that the data
// directory's WAL directory still leads to it (a base-backup rejoin makes
// a new data directory, whose WAL is on the ordinary disk).
func (r *campaign) walFSOf(n lab.Node) (walFS, error) {
	for _, w := range r.walFS {
		if w.node != n.Name {
			continue
		}
		got, err := filepath.EvalSymlinks(w.link)
		if err != nil {
			return w, fmt.Errorf("disk-full: %w", err)
		}
		if got != w.wal {
			return w, fmt.Errorf("disk-full: %s's %s leads to %s, not to its small filesystem %s (a base-backup rejoin replaced the data directory): filling the filesystem would not touch its WAL",
				n.Name, w.link, got, w.dir)
		}
		return w, nil
	}
	return walFS{}, fmt.Errorf("disk-full: %s's WAL is not on a filesystem of its own", n.Name)
}

// freeBytes is what an unprivileged writer can still allocate on the
// filesystem holding path.
func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// fill allocates every free block of the filesystem of dir to a new file
// path, in chunks that halve down to a page once one no longer fits. It
// returns the filler's size.
func fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off int64
	for chunk := int64(64 << 20); chunk >= 4096; chunk /= 2 {
		for {
			err := syscall.Fallocate(int(f.Fd()), 0, off, chunk)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return off, fmt.Errorf("fallocate %s: %w", path, err)
			}
			off += chunk
		}
	}
	return off, nil
}

// diskFull fills n's WAL filesystem. On a primary it then makes the
// server switch to new WAL segments until one cannot be created: the
// segments already allocated (the current one, those recycled ahead) take
// writes without needing a free block, and a busy server would only reach
// the end of them minutes later. A WAL write that fails is a PANIC.
func (r *campaign) diskFull(ctx context.Context, in injected, n lab.Node, primary string) (injected, error) {
	w, err := r.walFSOf(n)
	if err != nil {
		return in, err
	}
	filler := filepath.Join(w.dir, fillerName)
	in.heal = func(context.Context) error {
		if err := os.Remove(filler); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("disk-full heal: %w", err)
		}
		return nil
	}
	logPath := filepath.Join(n.DataDir, r.l.Flavor().LogDir, "postgresql.log")
	var logOffset int64
	if st, err := os.Stat(logPath); err == nil {
		logOffset = st.Size()
	}
	size, err := fill(filler)
	if err != nil {
		return in, fmt.Errorf("disk-full: fill %s: %w", w.dir, err)
	}
	free, err := freeBytes(w.dir)
	if err != nil {
		return in, err
	}
	in.detail = fmt.Sprintf("%s's %d MiB WAL filesystem filled (filler %d MiB, %d bytes free)", n.Name, walFSSize>>20, size>>20, free)
	if n.Name != primary {
		in.detail += "; a standby: its WAL receiver fails when it needs a new segment"
		return in, nil
	}
	switches, serr := r.switchUntilFull(ctx, n)
	if ctx.Err() != nil {
		return in, ctx.Err()
	}
	panicLine := waitLogLine(ctx, logPath, logOffset, "PANIC:", 5*time.Second)
	switch {
	case panicLine != "":
		in.detail += fmt.Sprintf("; after %d WAL segment switches the server logged %q", switches, panicLine)
	case serr != nil:
		in.detail += fmt.Sprintf("; after %d WAL segment switches the server stopped answering (%v), no PANIC in its log", switches, serr)
	default:
		in.detail += fmt.Sprintf("; the server still wrote WAL after %d segment switches", switches)
	}
	return in, nil
}

// switchUntilFull asks n's server for a new WAL segment and a commit after
// it, until the server fails or as many times as the filesystem could hold
// segments.
func (r *campaign) switchUntilFull(ctx context.Context, n lab.Node) (int, error) {
	conn, err := r.sql(ctx, n.Name)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	switchWAL := "SELECT " + r.l.Flavor().SQLPrefix + "switch_wal()"
	const segment = 16 << 20
	for i := range walFSSize/segment + 4 {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := conn.Exec(qctx, switchWAL)
		if err == nil {
			// A transaction id makes the commit write a record in the new
			// segment, which must then exist.
			_, err = conn.Exec(qctx, "SELECT txid_current()")
		}
		cancel()
		if err != nil {
			return i, err
		}
	}
	return walFSSize/segment + 4, nil
}

// waitLogLine returns the first line of the file at path, from offset on,
// holding want; it waits up to within for one to appear.
func waitLogLine(ctx context.Context, path string, offset int64, want string, within time.Duration) string {
	deadline := time.Now().Add(within)
	for {
		if line := findLine(path, offset, want); line != "" {
			return line
		}
		if time.Now().After(deadline) {
			return ""
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func findLine(path string, offset int64, want string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < offset {
		offset = 0 // a new file since the offset was taken
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if i := strings.Index(sc.Text(), want); i >= 0 {
			return sc.Text()[i:]
		}
	}
	return ""
}
