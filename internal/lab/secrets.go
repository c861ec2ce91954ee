package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-ha/vigil/internal/database"
)

// newPassword returns a random password of URL-safe base64 characters, which
// need no quoting in SQL, pgpass files or conninfo strings.
func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// writeSecrets creates the secrets directory: one file per password, and a
// pgpass file per role for libpq clients.
func (l *Lab) writeSecrets() error {
	if err := l.mkdirOwned(l.secretsDir(), 0o700); err != nil {
		return err
	}
	superPW, err := newPassword()
	if err != nil {
		return err
	}
	replPW, err := newPassword()
	if err != nil {
		return err
	}
	files := []struct {
		path, content string
	}{
		{l.SuperuserPasswordFile(), superPW + "\n"},
		{l.ReplicationPasswordFile(), replPW + "\n"},
		// Any host, port and database: the standbys follow whichever node
		// is primary, over the replication pseudo-database.
		{l.PassFile(), fmt.Sprintf("*:*:*:%s:%s\n", l.st.ReplicationUser, replPW)},
		{l.SuperuserPassFile(), fmt.Sprintf("*:*:*:%s:%s\n", l.st.Superuser, superPW)},
	}
	for _, f := range files {
		if err := l.writeOwned(f.path, []byte(f.content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func readSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read lab password: %w", err)
	}
	pw := strings.TrimSpace(string(data))
	if pw == "" {
		return "", fmt.Errorf("read lab password: %s is empty", path)
	}
	return pw, nil
}

// createReplicationRole creates the role the standbys stream as. The server
// gets a SCRAM verifier, not the password, and over stdin: the password is
// in no argument, log line or statement statistics.
func (l *Lab) createReplicationRole(ctx context.Context, primary Node) error {
	_, password, err := l.Replication()
	if err != nil {
		return err
	}
	verifier, err := database.SCRAMVerifier(password)
	if err != nil {
		return err
	}
	stmt := fmt.Sprintf("CREATE ROLE %s WITH LOGIN REPLICATION PASSWORD '%s';\n", pgx.Identifier{l.st.ReplicationUser}.Sanitize(), verifier)
	if _, err := l.psqlInput(ctx, primary, stmt); err != nil {
		return fmt.Errorf("create replication role on %s: %w", primary.Name, err)
	}
	return nil
}
