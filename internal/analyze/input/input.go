// Package input opens what `vigil analyze` is given (files, directories,
// standard input, gzip) and reads it as lines of bounded length, decoding
// GBK when the text is not UTF-8. Nothing here knows a log format.
package input

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// Source is one input: a file or standard input.
type Source struct {
	// Name is the path as given (or found in a directory); "-" for stdin.
	Name string
	open func() (io.ReadCloser, error)
}

// Open opens the source.
func (s Source) Open() (io.ReadCloser, error) { return s.open() }

// FromReader makes a source of r (standard input, tests).
func FromReader(name string, r io.Reader) Source {
	return Source{Name: name, open: func() (io.ReadCloser, error) { return io.NopCloser(r), nil }}
}

// Expand turns arguments into sources: files as given, directories walked
// (regular files, sorted, hidden ones skipped), "-" as stdin. A path that
// cannot be read is reported and skipped.
func Expand(args []string, stdin io.Reader) ([]Source, []error) {
	var out []Source
	var errs []error
	seenStdin := false
	for _, a := range args {
		if a == "-" {
			if !seenStdin {
				out = append(out, FromReader("-", stdin))
				seenStdin = true
			}
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		if !fi.IsDir() {
			out = append(out, fileSource(a))
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				return nil
			}
			if p != a && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("walk %s: %w", a, err))
		}
		if len(found) == 0 {
			errs = append(errs, fmt.Errorf("%s: no files in the directory", a))
		}
		sort.Strings(found)
		for _, p := range found {
			out = append(out, fileSource(p))
		}
	}
	return out, errs
}

func fileSource(path string) Source {
	return Source{Name: path, open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// Encoding is how a source's bytes were read.
type Encoding string

// Encodings.
const (
	UTF8    Encoding = "utf-8"
	GBK     Encoding = "gbk"
	Unknown Encoding = "unknown (read as is)"
)

// Info describes a prepared source.
type Info struct {
	Gzip     bool
	Encoding Encoding
	// Empty: nothing to read.
	Empty bool
}

// ErrBinary is returned for data that is not text.
var ErrBinary = errors.New("binary data, not a text log")

// sniffSize is how much is looked at to decide compression and encoding.
const sniffSize = 64 << 10

// Prepare undoes compression and decodes the text of r. A gzip stream is
// recognised by its magic bytes, whatever the file is called.
func Prepare(r io.Reader) (io.Reader, Info, error) {
	var info Info
	br := bufio.NewReaderSize(r, sniffSize)
	head, err := br.Peek(2)
	if err != nil && len(head) == 0 {
		if errors.Is(err, io.EOF) {
			info.Empty = true
			info.Encoding = UTF8
			return br, info, nil
		}
		return nil, info, fmt.Errorf("read: %w", err)
	}
	var src io.Reader = br
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, info, fmt.Errorf("gzip: %w", err)
		}
		info.Gzip = true
		src = bufio.NewReaderSize(zr, sniffSize)
	}
	tb, ok := src.(*bufio.Reader)
	if !ok {
		tb = bufio.NewReaderSize(src, sniffSize)
	}
	sample, err := tb.Peek(sniffSize)
	if len(sample) == 0 {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, info, fmt.Errorf("read: %w", err)
		}
		info.Empty = true
		info.Encoding = UTF8
		return tb, info, nil
	}
	// A UTF-8 byte order mark says nothing a parser needs.
	if bytes.HasPrefix(sample, []byte("\xef\xbb\xbf")) {
		tb.Discard(3)
		sample = sample[3:]
	}
	if IsBinary(sample) {
		return nil, info, ErrBinary
	}
	switch {
	case validUTF8Prefix(sample):
		info.Encoding = UTF8
		return tb, info, nil
	case isGBK(sample):
		info.Encoding = GBK
		return transform.NewReader(tb, simplifiedchinese.GBK.NewDecoder()), info, nil
	default:
		info.Encoding = Unknown
		return tb, info, nil
	}
}

// IsBinary reports data that is not text: NUL bytes, or many control
// characters other than tab, CR, LF, form feed and escape.
func IsBinary(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return true
	}
	ctl := 0
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b {
			ctl++
		}
	}
	return ctl*20 > len(b) // over 5%
}

// validUTF8Prefix is utf8.Valid that forgives a sequence cut by the end of
// the sample.
func validUTF8Prefix(b []byte) bool {
	for i := 0; i < 4 && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return true
		}
		if !utf8.FullRune(b[len(b)-1:]) || b[len(b)-1] >= 0x80 {
			b = b[:len(b)-1]
			continue
		}
		return false
	}
	return utf8.Valid(b)
}

// isGBK reports text that decodes as GBK (or GB18030's GBK part) without
// error and holds Chinese characters: how KingbaseES logs look on a
// server whose locale is zh_CN.GBK.
func isGBK(b []byte) bool {
	// Drop a trailing partial double-byte character.
	if n := len(b); n > 0 && b[n-1] >= 0x81 {
		trail := 0
		for i := n - 1; i >= 0 && b[i] >= 0x81; i-- {
			trail++
		}
		if trail%2 == 1 {
			b = b[:n-1]
		}
	}
	out, _, err := transform.Bytes(simplifiedchinese.GBK.NewDecoder(), b)
	if err != nil {
		return false
	}
	han := 0
	for _, r := range string(out) {
		if r == utf8.RuneError {
			return false
		}
		if r >= 0x4E00 && r <= 0x9FFF {
			han++
		}
	}
	return han > 0
}
