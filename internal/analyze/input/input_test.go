package input

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/text/encoding/simplifiedchinese"
)

func readAll(t *testing.T, data []byte, max int) ([]string, *Lines, Info, error) {
	t.Helper()
	r, info, err := Prepare(bytes.NewReader(data))
	if err != nil {
		return nil, nil, info, err
	}
	l := NewLines(r, max)
	var out []string
	for {
		b, ok := l.Next()
		if !ok {
			break
		}
		out = append(out, string(b))
	}
	return out, l, info, nil
}

func gbk(t *testing.T, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name      string
		data      []byte
		lines     []string
		enc       Encoding
		gzip      bool
		empty     bool
		err       error
		truncated bool
	}{
		{name: "utf-8", data: []byte("a\nb\n"), lines: []string{"a", "b"}, enc: UTF8},
		{name: "crlf and no final newline", data: []byte("a\r\nb"), lines: []string{"a", "b"}, enc: UTF8, truncated: true},
		{name: "byte order mark", data: []byte("\xef\xbb\xbfa\n"), lines: []string{"a"}, enc: UTF8},
		{name: "empty", data: nil, empty: true, enc: UTF8},
		{name: "gzip", data: gz(t, "x\ny\n"), lines: []string{"x", "y"}, enc: UTF8, gzip: true},
		{name: "gzip of nothing", data: gz(t, ""), empty: true, enc: UTF8, gzip: true},
		{name: "binary", data: []byte("\x00\x01\x02ELF\x00\x00"), err: ErrBinary},
		{name: "control characters", data: bytes.Repeat([]byte{1, 2, 3, 'a'}, 100), err: ErrBinary},
		{name: "gbk", data: append(gbk(t, "执行切换 failover beging\n只读事务\n"), '\n'), lines: []string{"执行切换 failover beging", "只读事务", ""}, enc: GBK},
		{name: "latin-1", data: []byte("caf\xe9 ok\n"), lines: []string{"caf\xe9 ok"}, enc: Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, l, info, err := readAll(t, tt.data, 0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if info.Encoding != tt.enc || info.Gzip != tt.gzip || info.Empty != tt.empty {
				t.Errorf("info = %+v, want encoding %s gzip %v empty %v", info, tt.enc, tt.gzip, tt.empty)
			}
			if strings.Join(lines, "|") != strings.Join(tt.lines, "|") {
				t.Errorf("lines = %q, want %q", lines, tt.lines)
			}
			if l.Truncated != tt.truncated {
				t.Errorf("truncated = %v, want %v", l.Truncated, tt.truncated)
			}
		})
	}
}

func TestLongLinesAreCutAndReadingGoesOn(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	data := "first\n" + long + "\nafter\n" + long // the last has no newline
	lines, l, _, err := readAll(t, []byte(data), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 || lines[0] != "first" || lines[2] != "after" {
		t.Fatalf("lines: %d, first %q third %q", len(lines), lines[0], lines[2])
	}
	if len(lines[1]) != 4096 || len(lines[3]) != 4096 {
		t.Errorf("cut lengths %d and %d, want 4096", len(lines[1]), len(lines[3]))
	}
	if l.Long() != 2 || l.Line() != 4 || !l.Truncated {
		t.Errorf("long %d line %d truncated %v", l.Long(), l.Line(), l.Truncated)
	}
}

func TestTruncatedGzipReportsTheError(t *testing.T) {
	data := gz(t, strings.Repeat("line of a log\n", 10000))
	data = data[:len(data)/2]
	lines, l, _, err := readAll(t, data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || l.Err() == nil || !errors.Is(l.Err(), io.ErrUnexpectedEOF) {
		t.Errorf("read %d lines, err %v: want some lines and an unexpected EOF", len(lines), l.Err())
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"b.log", "a.log", "sub/c.log", ".hidden/d.log", ".e.log"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte("x\n"), 0o644)
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	srcs, errs := Expand([]string{dir, "-", "-", filepath.Join(dir, "missing.log"), empty}, strings.NewReader("stdin\n"))
	var names []string
	for _, s := range srcs {
		names = append(names, strings.TrimPrefix(s.Name, dir+"/"))
	}
	if got := strings.Join(names, ","); got != "a.log,b.log,sub/c.log,-" {
		t.Errorf("sources = %s", got)
	}
	if len(errs) != 2 {
		t.Errorf("errors = %v, want the missing file and the empty directory", errs)
	}
	rc, err := srcs[3].Open()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	if string(b) != "stdin\n" {
		t.Errorf("stdin source read %q", b)
	}
}

func FuzzPrepareLines(f *testing.F) {
	f.Add([]byte("a\nb\n"))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Add([]byte{0xd6, 0xbb, 0xb6, 0xc1, '\n'})
	f.Add([]byte("\xef\xbb\xbf\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := Prepare(bytes.NewReader(data))
		if err != nil {
			return
		}
		l := NewLines(r, 64)
		var n int64
		for {
			b, ok := l.Next()
			if !ok {
				break
			}
			n++
			if len(b) > 64 {
				t.Fatalf("line of %d bytes, limit 64", len(b))
			}
			if n > int64(len(data))*4+8 {
				t.Fatal("more lines than the input can hold")
			}
		}
		if n != l.Line() {
			t.Fatalf("returned %d lines, Line() = %d", n, l.Line())
		}
	})
}

// TestLinesContext: a context that ends stops the reading within a few
// thousand lines, and says so apart from read errors.
func TestLinesContext(t *testing.T) {
	data := bytes.Repeat([]byte("line\n"), 10000)
	count := func(l *Lines, cancelAt int64, cancel func()) int64 {
		var n int64
		for {
			if _, ok := l.Next(); !ok {
				return n
			}
			n++
			if n == cancelAt {
				cancel()
			}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := NewLinesContext(ctx, bytes.NewReader(data), 0)
	if n := count(l, 10, cancel); n != checkEvery || l.Line() != checkEvery {
		t.Errorf("cancelled at line 10: read %d lines (Line %d), want %d", n, l.Line(), checkEvery)
	}
	if !errors.Is(l.Err(), context.Canceled) || !errors.Is(l.Canceled(), context.Canceled) {
		t.Errorf("Err %v, Canceled %v", l.Err(), l.Canceled())
	}
	if _, ok := l.Next(); ok {
		t.Error("a line after the context ended")
	}

	l = NewLinesContext(ctx, bytes.NewReader(data), 0)
	if n := count(l, 0, nil); n != 0 || !errors.Is(l.Canceled(), context.Canceled) {
		t.Errorf("ended context: %d lines, Canceled %v", n, l.Canceled())
	}

	l = NewLinesContext(context.Background(), bytes.NewReader(data), 0)
	if n := count(l, 0, nil); n != 10000 || l.Err() != nil || l.Canceled() != nil {
		t.Errorf("read %d lines, Err %v, Canceled %v", n, l.Err(), l.Canceled())
	}

	boom := errors.New("boom")
	l = NewLinesContext(context.Background(), io.MultiReader(bytes.NewReader(data[:50]), iotest.ErrReader(boom)), 0)
	if n := count(l, 0, nil); n != 10 || !errors.Is(l.Err(), boom) || l.Canceled() != nil {
		t.Errorf("read error: %d lines, Err %v, Canceled %v", n, l.Err(), l.Canceled())
	}
}
