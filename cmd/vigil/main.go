// Command vigil is an automatic-failover manager for PostgreSQL and KingbaseES
// streaming-replication clusters.
package main

import (
	"os"

	"github.com/vigil-ha/vigil/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
