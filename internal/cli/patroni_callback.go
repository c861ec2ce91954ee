package cli

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/vip"
)

// newPatroniCallbackCmd is the VIP callback of the Patroni clusters that
// `vigil bench failover --compare patroni` runs: Patroni has no VIP of its
// own, and calls this with the action, the node's role and the scope.
func newPatroniCallbackCmd() *cobra.Command {
	var (
		address string
		iface   string
		arps    int
	)
	cmd := &cobra.Command{
		Use:    "patroni-callback --vip ADDR/BITS --interface IF ACTION ROLE SCOPE",
		Short:  "Move the VIP on a Patroni callback: add it on the primary, remove it elsewhere (used by bench)",
		Hidden: true,
		Args:   cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix, err := netip.ParsePrefix(address)
			if err != nil {
				return usageError(fmt.Errorf("--vip: %w", err))
			}
			action, role := args[0], args[1]
			log := logger(cmd).With("action", action, "role", role, "scope", args[2], "vip", prefix)
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			// The first gratuitous ARP goes with Up; the repeats here, before
			// the process exits (Up would send them in the background).
			m := &vip.Manager{Address: prefix, Interface: iface, ARPCount: 1, ARPInterval: 100 * time.Millisecond, Logger: log}
			if patroniPrimary(action, role) {
				if err := m.Up(ctx); err != nil {
					return fmt.Errorf("patroni callback %s %s: add the VIP: %w", action, role, err)
				}
				if arps > 1 {
					m.ARPCount = arps - 1
					if err := m.Announce(ctx); err != nil {
						return fmt.Errorf("patroni callback %s %s: announce the VIP: %w", action, role, err)
					}
				}
				log.Info("patroni callback: VIP up")
				return nil
			}
			if err := m.Down(ctx); err != nil {
				return fmt.Errorf("patroni callback %s %s: remove the VIP: %w", action, role, err)
			}
			log.Info("patroni callback: VIP down")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&address, "vip", "", "the service address with its prefix length, e.g. 198.18.7.100/24 (required)")
	f.StringVar(&iface, "interface", "eth0", "interface to put it on")
	f.IntVar(&arps, "gratuitous-arp-count", 3, "gratuitous ARPs sent after adding it")
	_ = cmd.MarkFlagRequired("vip")
	return cmd
}

// patroniPrimary: the node runs the primary after this action. Patroni 3.0
// says "master" (later versions "primary"); on_stop leaves nothing running.
func patroniPrimary(action, role string) bool {
	return action != "on_stop" && (role == "master" || role == "primary")
}
