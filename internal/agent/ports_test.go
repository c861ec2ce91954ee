package agent

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/clock"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/isolation"
)

// The production types satisfy the agent's interfaces as they are.
var (
	_ Server         = (*database.Server)(nil)
	_ Control        = pgControl{}
	_ Store          = (*dcs.Store)(nil)
	_ TrustedChecker = isolation.Checker{}
	_ FailsafePinger = httpPinger{}
	_ Clock          = clock.Real{}
)

// pg_rewind connects as rejoin.rewind when it is set (an agent on the
// least-privilege role cannot read the leader's files), else as the agent.
func TestRewindConnUsesTheRewindAccount(t *testing.T) {
	srv := &database.Server{Conn: database.ConnConfig{User: "vigil", Password: "agent-pw", Database: "postgres", ConnectTimeout: 2 * time.Second}}
	own := pgControl{srv: srv}.RewindConn()
	if own.User != "vigil" || own.Password != "agent-pw" || own.Database != "postgres" || own.ConnectTimeout != 2*time.Second {
		t.Errorf("without a rewind account: %+v", own)
	}
	rw := pgControl{srv: srv, rewindUser: "rewinder", rewindPassword: "rewind-pw"}.RewindConn()
	if rw.User != "rewinder" || rw.Password != "rewind-pw" || rw.Database != "postgres" || rw.ConnectTimeout != 2*time.Second {
		t.Errorf("with a rewind account: %+v", rw)
	}
}
