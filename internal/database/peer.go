package database

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PeerIsPrimary connects to another server of the cluster at host:port
// with this server's credentials and reports whether it runs as a primary
// (accepts the session and is not in recovery). A standby asks it of its
// upstream when the leader key is gone and the WAL receiver is quiet: a
// receiver restarts after wal_receiver_timeout under load while its
// upstream serves writes, so only the upstream itself can say it is gone.
// An error means the upstream did not answer (down, hung, cut off).
func (s *Server) PeerIsPrimary(ctx context.Context, host string, port int) (bool, error) {
	conn := s.Conn
	conn.Host, conn.Port = host, port
	peer := &Server{Name: fmt.Sprintf("%s:%d", host, port), Flavor: s.Flavor, Conn: conn, Logger: s.Logger}
	var inRecovery bool
	err := peer.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, s.sql(`select {{pg_is_in_recovery}}()`)).Scan(&inRecovery)
	})
	if err != nil {
		return false, fmt.Errorf("ask %s whether it runs as a primary: %w", peer.Name, err)
	}
	return !inRecovery, nil
}
