package database

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The adapter's operations that a least-privilege role can be refused,
// each named in RoleGrant.Ops of the grant that allows it. A refusal says
// only "permission denied", in the server's language: the operation is
// what ties it to the setup-role statement that fixes it.
const (
	OpObserve    = "Observe"
	OpProbeWrite = "ProbeWrite"
	OpPromote    = "Promote"
	OpCheckpoint = "Checkpoint"
	OpEnsureSlot = "EnsureSlot"
	OpReloadConf = "reload configuration"
)

// OpAlterSystem is the operation of ALTER SYSTEM SET name.
func OpAlterSystem(name string) string { return "ALTER SYSTEM SET " + name }

// sqlStateInsufficientPrivilege is insufficient_privilege: a missing grant,
// role attribute or ownership.
const sqlStateInsufficientPrivilege = "42501"

// MissingGrantError is an adapter call the server refused for lack of a
// privilege, with the statements of `vigil setup-role --print` that give it.
type MissingGrantError struct {
	Node string
	// Op is the refused operation (one of the Op constants).
	Op string
	// Role is the role the agent connected as.
	Role string
	// Grants are the setup-role statements Op needs; one of them is missing.
	Grants []string
	Err    error
}

func (e *MissingGrantError) Error() string {
	if len(e.Grants) == 0 {
		return fmt.Sprintf("%s on %s: role %s lacks a privilege (see vigil setup-role --print; before PostgreSQL 15 the agent needs a superuser): %v", e.Op, e.Node, e.Role, e.Err)
	}
	return fmt.Sprintf("%s on %s: role %s lacks a privilege: as a superuser on the primary, run %s (vigil setup-role --print --role %s lists every grant; before PostgreSQL 15 the agent needs a superuser): %v",
		e.Op, e.Node, e.Role, strings.Join(quoteAll(e.Grants), " and "), e.Role, e.Err)
}

func (e *MissingGrantError) Unwrap() error { return e.Err }

// quoteAll puts each statement on one line, for a log line.
func quoteAll(stmts []string) []string {
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = "`" + strings.Join(strings.Fields(s), " ") + "`"
	}
	return out
}

// needs names the grant behind err when the server refused op for lack of
// a privilege; any other error, and nil, come back unchanged.
func (s *Server) needs(op string, err error) error {
	if err == nil || !isSQLState(err, sqlStateInsufficientPrivilege) {
		return err
	}
	var already *MissingGrantError
	if errors.As(err, &already) {
		return err
	}
	return &MissingGrantError{Node: s.Name, Op: op, Role: s.Conn.User, Grants: GrantsFor(op, s.Conn.User), Err: err}
}

// GrantsFor returns the statements of the least-privilege setup that op
// needs for role, in setup order; nil for an operation no grant covers, or
// a role name RoleSQL refuses (a role made by hand).
func GrantsFor(op, role string) []string {
	grants, err := RoleSQL(versionRoleGrants, role)
	if err != nil {
		return nil
	}
	var out []string
	for _, g := range grants {
		if slices.Contains(g.Ops, op) {
			out = append(out, g.SQL)
		}
	}
	return out
}
