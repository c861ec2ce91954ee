package cli

import "testing"

func TestSetupRole(t *testing.T) {
	runCLICases(t, "setup-role", []cliCase{
		{"default", []string{"--print"}, ExitOK, []string{
			`-- Least-privilege role "vigil"`, "GRANT pg_monitor TO vigil;\n", "GRANT pg_checkpoint TO vigil;\n",
			"-- Checkpoint: CHECKPOINT", "--   pg_signal_backend: "}, ""},
		{"other role and version", []string{"--print", "--role", "ha", "--version", "16"}, ExitOK, []string{"PostgreSQL 16", "ALTER TABLE vigil.heartbeat OWNER TO ha;\n"}, ""},
		{"before 15", []string{"--print", "--version", "14"}, ExitUsage, nil, "run the agent as a superuser"},
		{"without --print", nil, ExitUsage, nil, "give --print"},
		{"bad role", []string{"--print", "--role", "x y"}, ExitUsage, nil, `role name "x y"`},
	})
}
