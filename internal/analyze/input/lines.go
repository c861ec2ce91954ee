package input

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the longest line kept whole. Longer lines are cut to
// it: a log line's meaning is in its first bytes (prefix and message), and
// a bounded line is what keeps a multi-gigabyte log in bounded memory.
const DefaultMaxLine = 64 << 10

// checkEvery is how many lines are read between looks at the context: often
// enough to stop a multi-gigabyte read promptly, rarely enough to cost
// nothing per line.
const checkEvery = 4096

// Lines reads lines of at most max bytes. Unlike bufio.Scanner, which stops
// for good at the first line longer than its buffer, it cuts such a line,
// skips the rest of it and goes on. It stops early when its context ends.
type Lines struct {
	ctx  context.Context
	br   *bufio.Reader
	max  int
	buf  []byte
	n    int64
	long int64
	err  error
	// canceled is the context's error once it ended the input.
	canceled error
	done     bool
	// Truncated is set when the input ended without a final newline.
	Truncated bool
}

// NewLines reads r with lines cut to max bytes (DefaultMaxLine if <= 0),
// to the end: nothing cancels it (see NewLinesContext).
func NewLines(r io.Reader, max int) *Lines {
	return NewLinesContext(context.Background(), r, max)
}

// NewLinesContext is NewLines that stops once ctx ends: Next then reports
// no more lines, and Err and Canceled report why. The context is looked at
// every few thousand lines.
func NewLinesContext(ctx context.Context, r io.Reader, max int) *Lines {
	if max <= 0 {
		max = DefaultMaxLine
	}
	size := max
	if size < 4096 {
		size = 4096
	}
	return &Lines{ctx: ctx, br: bufio.NewReaderSize(r, size), max: max}
}

// Next returns the next line without its line ending. The slice is valid
// until the next call.
func (l *Lines) Next() ([]byte, bool) {
	if l.done {
		return nil, false
	}
	if l.n%checkEvery == 0 {
		if err := l.ctx.Err(); err != nil {
			l.done = true
			l.canceled = fmt.Errorf("after line %d: %w", l.n, err)
			l.err = l.canceled
			return nil, false
		}
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

// Err is the read error that ended the input, if any (io.EOF is none), or
// the context's error (wrapped) when the context ended it.
func (l *Lines) Err() error { return l.err }

// Canceled is the context's error (wrapped) when the context ended the
// input, and nil otherwise, whatever else went wrong: a parser returns it,
// since a cancelled read is not a result, while a read error leaves the
// lines before it usable.
func (l *Lines) Canceled() error { return l.canceled }

// Peek returns up to n bytes ahead without consuming them, for format
// detection.
func (l *Lines) Peek(n int) []byte {
	if n > l.br.Size() {
		n = l.br.Size()
	}
	b, _ := l.br.Peek(n)
	return b
}
