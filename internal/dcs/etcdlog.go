package dcs

import (
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// repeatInterval is how often a repeated etcd message is let through.
const repeatInterval = 30 * time.Second

// repeated reports whether msg is one of the etcd warnings that repeat for
// as long as a peer is unreachable: one per raft message etcd cannot send
// or take in (20 a second with the lab's 50 ms tick, from some 30 s after a
// host dies), and its probes and version checks of the peer (every few
// seconds). The first says the peer is gone; the rest drown the log.
func repeated(msg string) bool {
	switch msg {
	case "prober detected unhealthy status", "failed to reach the peer URL", "failed to get version":
		return true
	}
	// "... since sending buffer is full", "... since receiving buffer is
	// full (overloaded network)".
	return strings.HasPrefix(msg, "dropped internal Raft message since ")
}

// peerField: the field names the peer in the repeated messages.
func peerField(key string) bool { return key == "remote-peer-id" || key == "remote-member-id" }

// repeatLimiter is a zap core that lets the first of the repeated messages
// through and then at most one per interval for each message and peer,
// saying how many it held back since the previous one. Other messages pass
// untouched.
type repeatLimiter struct {
	zapcore.Core
	every time.Duration
	now   func() time.Time

	mu   *sync.Mutex
	seen map[string]*repeats
}

type repeats struct {
	last time.Time // when one was last let through
	held int       // held back since then
}

func newRepeatLimiter(core zapcore.Core, every time.Duration, now func() time.Time) zapcore.Core {
	return &repeatLimiter{Core: core, every: every, now: now, mu: &sync.Mutex{}, seen: map[string]*repeats{}}
}

// With keeps the count shared with the parent: etcd derives loggers with
// fields for each peer.
func (r *repeatLimiter) With(fields []zapcore.Field) zapcore.Core {
	c := *r
	c.Core = r.Core.With(fields)
	return &c
}

// Check registers this core rather than the wrapped one, so that Write
// sees every entry; fields are only known there.
func (r *repeatLimiter) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if r.Enabled(ent.Level) {
		return ce.AddCore(ent, r)
	}
	return ce
}

func (r *repeatLimiter) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if !repeated(ent.Message) {
		return r.Core.Write(ent, fields)
	}
	key := ent.Message
	for _, f := range fields {
		if peerField(f.Key) {
			key += "\x00" + f.String
		}
	}
	now := r.now()
	r.mu.Lock()
	s, ok := r.seen[key]
	if !ok {
		s = &repeats{}
		r.seen[key] = s
	}
	if ok && now.Sub(s.last) < r.every {
		s.held++
		r.mu.Unlock()
		return nil
	}
	held := s.held
	s.last, s.held = now, 0
	r.mu.Unlock()
	if held > 0 {
		fields = append(fields[:len(fields):len(fields)], zap.Int("repeats_held_back", held), zap.Duration("repeat_interval", r.every))
	}
	return r.Core.Write(ent, fields)
}
