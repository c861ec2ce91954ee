package agent

import (
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
