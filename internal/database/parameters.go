package database

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/pgparam"
)

// Queries of the cluster-wide parameters (see ApplyParameters).
const (
	qParameterSpecs = `select name, vartype, coalesce(unit, ''), coalesce(min_val, ''), coalesce(max_val, ''),
		coalesce(enumvals, '{}'::text[]), context from {{pg_settings}} order by name`
	qPendingRestart = `select name from {{pg_settings}} where pending_restart order by name`
)

// ParameterSpecs returns the server's version and what it says of each of
// its parameters, against which cluster-wide values are checked.
func (s *Server) ParameterSpecs(ctx context.Context) (version string, specs []pgparam.Spec, err error) {
	err = s.withConn(ctx, func(c *pgx.Conn) error {
		if err := c.QueryRow(ctx, `show server_version`).Scan(&version); err != nil {
			return err
		}
		rows, err := c.Query(ctx, s.sql(qParameterSpecs))
		if err != nil {
			return s.needs(OpObserve, err)
		}
		specs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgparam.Spec, error) {
			var p pgparam.Spec
			err := r.Scan(&p.Name, &p.Vartype, &p.Unit, &p.Min, &p.Max, &p.EnumVals, &p.Context)
			return p, err
		})
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("read parameters of %s: %w", s.Name, err)
	}
	return version, specs, nil
}

// ApplyParameters writes the cluster-wide parameters into the server's
// auto configuration file (ALTER SYSTEM), resets the ones removed from
// them, and reloads: a parameter the server applies at reload is in effect
// once each session has read the new configuration; one that needs a
// restart shows in PendingRestart. The agent's role needs ALTER SYSTEM on
// each parameter: a superuser, or GRANT ALTER SYSTEM ON PARAMETER (15 and
// later), which a refusal names.
func (s *Server) ApplyParameters(ctx context.Context, set map[string]string, reset []string) error {
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		for _, name := range reset {
			if _, ok := set[name]; ok || pgparam.ManagedByVigil(name) {
				continue
			}
			if _, err := c.Exec(ctx, "ALTER SYSTEM RESET "+pgx.Identifier{name}.Sanitize()); err != nil {
				return fmt.Errorf("alter system reset %s: %w", name, s.needs(OpAlterSystem(name), err))
			}
		}
		for name, value := range set {
			if pgparam.ManagedByVigil(name) {
				continue
			}
			if err := s.alterSystemSet(ctx, c, name, value); err != nil {
				return err
			}
		}
		return s.reloadConf(ctx, c)
	})
	if err != nil {
		return fmt.Errorf("apply cluster parameters on %s: %w", s.Name, err)
	}
	return nil
}

// PendingRestart names the parameters whose configured value waits for a
// restart of the server.
func (s *Server) PendingRestart(ctx context.Context) ([]string, error) {
	var names []string
	err := s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, s.sql(qPendingRestart))
		if err != nil {
			return err
		}
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read pending restarts of %s: %w", s.Name, err)
	}
	return names, nil
}

// alterSystemSet persists name = value in the auto configuration file; a
// refusal for lack of privilege names the grant that allows it.
func (s *Server) alterSystemSet(ctx context.Context, c *pgx.Conn, name, value string) error {
	stmt := fmt.Sprintf("ALTER SYSTEM SET %s = %s", pgx.Identifier{name}.Sanitize(), quoteLiteral(value))
	if _, err := c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("alter system %s: %w", name, s.needs(OpAlterSystem(name), err))
	}
	return nil
}

// reloadConf makes the server read its configuration files again; the
// reload is asynchronous.
func (s *Server) reloadConf(ctx context.Context, c *pgx.Conn) error {
	if _, err := c.Exec(ctx, s.sql(qReloadConf)); err != nil {
		return fmt.Errorf("reload configuration: %w", s.needs(OpReloadConf, err))
	}
	return nil
}
