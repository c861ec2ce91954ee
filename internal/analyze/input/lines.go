package input

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxLine is the longest line kept whole. Longer lines are cut to
// it: a log line's meaning is in its first bytes (prefix and message), and
// a bounded line is what keeps a multi-gigabyte log in bounded memory.
const DefaultMaxLine = 64 << 10

// Lines reads lines of at most max bytes. Unlike bufio.Scanner, which stops
// for good at the first line longer than its buffer, it cuts such a line,
// skips the rest of it and goes on.
type Lines struct {
	br   *bufio.Reader
	max  int
	buf  []byte
	n    int64
	long int64
	err  error
	done bool
	// Truncated is set when the input ended without a final newline.
	Truncated bool
}

// NewLines reads r with lines cut to max bytes (DefaultMaxLine if <= 0).
func NewLines(r io.Reader, max int) *Lines {
	if max <= 0 {
		max = DefaultMaxLine
	}
	size := max
	if size < 4096 {
		size = 4096
	}
	return &Lines{br: bufio.NewReaderSize(r, size), max: max}
}

// Next returns the next line without its line ending. The slice is valid
// until the next call.
func (l *Lines) Next() ([]byte, bool) {
	if l.done {
		return nil, false
	}
	line, err := l.br.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		// A long line: keep its start, drop the rest.
		l.buf = append(l.buf[:0], line...)
		l.long++
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = l.br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			l.err = err
		}
		if err != nil {
			l.done = true
			l.Truncated = true
		}
		line = l.buf
	case errors.Is(err, io.EOF):
		l.done = true
		if len(line) == 0 {
			return nil, false
		}
		l.Truncated = true
	default:
		l.done = true
		l.err = err
		if len(line) == 0 {
			return nil, false
		}
	}
	if len(line) > l.max {
		line = line[:l.max]
	}
	l.n++
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, true
}

// Line is the number of the line last returned (1-based).
func (l *Lines) Line() int64 { return l.n }

// Long is how many lines were cut.
func (l *Lines) Long() int64 { return l.long }

// Err is the read error that ended the input, if any (io.EOF is none).
func (l *Lines) Err() error { return l.err }

// Peek returns up to n bytes ahead without consuming them, for format
// detection.
func (l *Lines) Peek(n int) []byte {
	if n > l.br.Size() {
		n = l.br.Size()
	}
	b, _ := l.br.Peek(n)
	return b
}
