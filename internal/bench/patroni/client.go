package patroni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/lab"
	"github.com/vigil-ha/vigil/internal/workload"
)

// The client and the background load are the demo's: `vigil workload`
// and pgbench in the lab's client namespace, with the demo's bound on one
// write. package demo keeps its runner unexported; these start the same
// commands with the same arguments.

// clientTimeout is demo's bound on one client write.
const clientTimeout = 300 * time.Millisecond

type clientProc struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	stopped   bool
	res       workload.Result
	err       error
}

func startClient(l *lab.Lab, client lab.Client, binary string, rate int, o workload.Options) (*clientProc, error) {
	args := []string{"--net=/run/netns/" + client.Netns, "--", binary, "workload",
		"--host", o.Host, "--port", fmt.Sprint(o.Port), "--user", o.User, "--password-file", l.SuperuserPasswordFile(),
		"--database", o.Database, "--rate", fmt.Sprint(rate), "--duration", "10m", "--timeout", clientTimeout.String()}
	w := &clientProc{cmd: exec.Command("nsenter", args...)}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.errb
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the client: %w", err)
	}
	return w, nil
}

// stop ends the client and reads its record (once).
func (w *clientProc) stop() (workload.Result, error) {
	if w.stopped {
		return w.res, w.err
	}
	w.stopped = true
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.cmd.Wait(); err != nil {
		w.err = fmt.Errorf("client: %w: %s", err, w.errb.String())
		return w.res, w.err
	}
	if err := json.Unmarshal(w.out.Bytes(), &w.res); err != nil {
		w.err = fmt.Errorf("client output: %w", err)
	}
	return w.res, w.err
}

// startPGBench initialises pgbench's tables through the VIP and runs it at
// tps until the returned stop is called; the password comes from the lab's
// pgpass file.
func startPGBench(ctx context.Context, l *lab.Lab, client lab.Client, tps int, o workload.Options) (func(), error) {
	pgbench := filepath.Join(l.BinDir(), "pgbench")
	base := []string{"--net=/run/netns/" + client.Netns, "--", pgbench, "-h", o.Host, "-p", fmt.Sprint(o.Port), "-U", o.User}
	env := append(os.Environ(), "PGPASSFILE="+l.SuperuserPassFile())
	initCmd := exec.CommandContext(ctx, "nsenter", append(base, "-i", "-q", "-s", "2", o.Database)...)
	initCmd.Env = env
	if out, err := initCmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %w: %s", err, out)
	}
	run := exec.Command("nsenter", append(base, "-n", "-c", "2", "-j", "1", "-R", fmt.Sprint(tps), "-T", "600", o.Database)...)
	run.Env = env
	if err := run.Start(); err != nil {
		return nil, fmt.Errorf("start pgbench: %w", err)
	}
	return func() {
		_ = run.Process.Kill()
		_ = run.Wait()
	}, nil
}
