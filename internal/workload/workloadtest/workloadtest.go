// Package workloadtest runs `vigil workload` as a separate client process
// for end-to-end tests, the way an application would write: from its own
// network namespace, through whatever route the test puts in front of the
// primary (a VIP, a proxy).
package workloadtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/workload"
)

// Target is where and as whom the client writes.
type Target struct {
	Netns        string // the client's network namespace; "" for the test's own
	Host         string
	Port         int
	User         string
	PasswordFile string
	Database     string
}

// Rate is the client's writes per second: enough to time an outage to
// 20 ms, few enough for a 2-core machine running a whole cluster.
const Rate = 50

// Client is one running `vigil workload`.
type Client struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	errb    bytes.Buffer
	done    chan struct{}
	stopped bool
}

// Start runs vigilBin's workload against to until Stop (or the test's end,
// when it is killed).
func Start(t testing.TB, vigilBin string, to Target) *Client {
	t.Helper()
	args := []string{"workload", "--host", to.Host, "--port", strconv.Itoa(to.Port), "--user", to.User,
		"--password-file", to.PasswordFile, "--database", to.Database,
		"--rate", strconv.Itoa(Rate), "--duration", "10m", "--timeout", "300ms"}
	c := &Client{done: make(chan struct{})}
	if to.Netns != "" {
		c.cmd = exec.Command("nsenter", append([]string{"--net=" + proc.NetnsPath(to.Netns), "--", vigilBin}, args...)...)
	} else {
		c.cmd = exec.Command(vigilBin, args...)
	}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errb
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start the client: %v", err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		if !c.stopped {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// Stop ends the client with SIGTERM, on which it prints its record of every
// write, and returns that record.
func (c *Client) Stop(t testing.TB) workload.Result {
	t.Helper()
	c.stopped = true
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("the client did not exit within 30 s of SIGTERM: %s", c.errb.String())
	}
	if !c.cmd.ProcessState.Success() {
		t.Fatalf("client: %v: %s", c.cmd.ProcessState, c.errb.String())
	}
	var res workload.Result
	if err := json.Unmarshal(c.out.Bytes(), &res); err != nil {
		out := c.out.String()
		t.Fatalf("client output: %v: %q", err, out[max(0, len(out)-2000):])
	}
	return res
}
