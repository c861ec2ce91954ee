package chaos

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCopyTreeKeepsFilesModesAndOwners(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "000000010000000000000001"), []byte("segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "archive_status", "x.done"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dst, "000000010000000000000001"))
	if err != nil || string(data) != "segment" {
		t.Fatalf("copied segment: %q, %v", data, err)
	}
	st, err := os.Stat(filepath.Join(dst, "archive_status", "x.done"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("copied status file: %v, %v", st, err)
	}
	if err := os.Symlink("elsewhere", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, t.TempDir()); err == nil {
		t.Error("a symbolic link was copied; only files and directories are expected in a WAL directory")
	}
}

// TestFillLeavesNoFreeBlock fills a small tmpfs: afterwards an ordinary
// write fails with ENOSPC.
func TestFillLeavesNoFreeBlock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	size, err := fill(filepath.Join(dir, fillerName))
	if err != nil {
		t.Fatal(err)
	}
	if size < 7<<20 {
		t.Errorf("filler of %d bytes on an 8 MiB filesystem", size)
	}
	if free, err := freeBytes(dir); err != nil || free != 0 {
		t.Errorf("free after fill = %d, %v", free, err)
	}
	err = os.WriteFile(filepath.Join(dir, "more"), make([]byte, 8192), 0o600)
	if err == nil {
		t.Fatal("a write succeeded on the filled filesystem")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write: %v, want ENOSPC", err)
	}
}
