package vip

import (
	"context"
	"fmt"
)

// Transport does the address work on the host that is to carry the
// address or drop it: netlink on this host (Manager), ip and arping on
// another (Remote). The rules of moving an address are not a transport's:
// Add and Remove hold them, once for every transport.
type Transport interface {
	// Name identifies the address and its host in errors and logs.
	Name() string
	// Holds reports whether the address is on the interface.
	Holds(ctx context.Context) (bool, error)
	// Answerer asks the segment whether another host answers ARP for the
	// address, and returns what it knows of that host (its MAC when the
	// transport learns it); "" when no host answers.
	Answerer(ctx context.Context) (string, error)
	// Assign adds the address to the interface.
	Assign(ctx context.Context) error
	// Unassign deletes the address from the interface.
	Unassign(ctx context.Context) error
}

// Add puts the address on t's host unless it is there already (added is
// then false). It refuses with ErrDuplicate while another host answers
// for the address: that host still holds it (an old primary that was not
// fenced), and adding it here would split the clients between two
// servers.
func Add(ctx context.Context, t Transport) (added bool, err error) {
	held, err := t.Holds(ctx)
	if err != nil || held {
		return false, err
	}
	who, err := t.Answerer(ctx)
	if err != nil {
		return false, err
	}
	if who != "" {
		return false, fmt.Errorf("%s: %w: %s answers ARP for it; refusing to add it (fence that host first)", t.Name(), ErrDuplicate, who)
	}
	if err := t.Assign(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// Remove takes the address off t's host. An address that is not there is
// not an error (removed is then false): a second removal, e.g. when
// Pgpool-II runs the failover command twice, is harmless. What decides is
// the host's address list, not a message of the delete.
func Remove(ctx context.Context, t Transport) (removed bool, err error) {
	held, err := t.Holds(ctx)
	if err != nil || !held {
		return false, err
	}
	if err := t.Unassign(ctx); err != nil {
		// It may have gone meanwhile, which is all that was asked.
		if held, herr := t.Holds(ctx); herr == nil && !held {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
