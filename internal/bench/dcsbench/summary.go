package dcsbench

import (
	"fmt"
	"sort"
	"strings"
)

// Summary renders a report for a terminal.
func Summary(rep Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d clusters x %d members on a %d-member etcd, %.0fs window, %d cores at load %.1f-%.1f (lease TTL %s, loop %s)\n",
		rep.Clusters, rep.Members, rep.Etcd.Members, rep.DurationS, rep.Cores, rep.LoadAverage[0], rep.LoadAverage[1], rep.LeaseTTL, rep.Loop)
	e := rep.Etcd
	fmt.Fprintf(&b, "etcd:     %.0f requests/s (%.1f per cluster), client traffic %.1f kB/s (%.2f kB/s per cluster), peer traffic %.1f kB/s, db %.1f MB, CPU %.2f cores\n",
		e.RequestsPerS, e.RequestsPerSCluster, e.ClientBytesPerS/1e3, e.ClientBytesPerSClust/1e3, e.PeerBytesPerS/1e3, e.DBSizeBytes/1e6, e.CPUCores)
	fmt.Fprintf(&b, "          %.0f WAL fsyncs/s over the members (%.2f ms mean)\n", e.FsyncsPerS, e.FsyncMeanMS)
	fmt.Fprintf(&b, "          %.0f revisions/s; backend in use grew %.1f kB/s (%.0f bytes/s per cluster), uncompacted: its %.1f GiB quota full in about %.0f h\n",
		e.RevisionsPerS, e.DBGrowthBytesPerS/1e3, e.DBGrowthBytesPerS/float64(rep.Clusters), e.QuotaBytes/(1<<30), e.HoursToQuota)
	methods := make([]string, 0, len(e.ByMethodPerS))
	for m := range e.ByMethodPerS {
		methods = append(methods, m)
	}
	sort.Slice(methods, func(i, j int) bool { return e.ByMethodPerS[methods[i]] > e.ByMethodPerS[methods[j]] })
	var parts []string
	for _, m := range methods {
		parts = append(parts, fmt.Sprintf("%s %.1f", m, e.ByMethodPerS[m]/float64(rep.Clusters)))
	}
	fmt.Fprintf(&b, "          per cluster per second: %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(&b, "keys:     %.0f bytes per cluster (median; max %.0f), %.0f keys\n", rep.KeyBytesPerCluster.Median, rep.KeyBytesPerCluster.Max, rep.KeysPerCluster.Median)
	a := rep.Agents
	fmt.Fprintf(&b, "agents:   %d, CPU %.2f cores (%.4f per cluster), %d goroutines, %.0f kB heap and %.1f fds per agent\n",
		a.Agents, a.CPUCores, a.CPUCoresPerCluster, a.Goroutines, a.HeapBytesPerAgent/1e3, a.FDsPerAgent)
	fo := rep.FailoverS
	fmt.Fprintf(&b, "failover: %d crashes, %d completed, min/median/p95/max %.2f/%.2f/%.2f/%.2f s (crash to the new writable-primary record)\n",
		len(rep.Failovers), len(rep.Failovers)-rep.FailoversMissing, fo.Min, fo.Median, fo.P95, fo.Max)
	fmt.Fprintf(&b, "          of which to another node's leader key: median %.2f s, max %.2f s\n", rep.LeaderKeyS.Median, rep.LeaderKeyS.Max)
	for _, s := range rep.CrashesNotInjected {
		fmt.Fprintf(&b, "          not injected: %s\n", s)
	}
	for _, f := range rep.Failovers {
		if !f.OK {
			fmt.Fprintf(&b, "          NOT COMPLETED: %s lost %s and no other member published itself writable\n", f.Cluster, f.Crashed)
		}
	}
	fmt.Fprintf(&b, "unplanned primary changes (a leader lost its lease or its primary): %d\n", len(rep.Unplanned))
	for _, u := range rep.Unplanned {
		fmt.Fprintf(&b, "          %s\n", u)
	}
	if len(rep.Wrong) == 0 && len(rep.TwoPrimaries) == 0 {
		fmt.Fprintf(&b, "state:    every cluster ended with exactly one primary, named by its leader key and writable-primary record\n")
	}
	for _, w := range rep.Wrong {
		fmt.Fprintf(&b, "WRONG:    %s: %s\n", w.Cluster, w.Problem)
	}
	for _, v := range rep.TwoPrimaries {
		fmt.Fprintf(&b, "TWO PRIMARIES: %s\n", v)
	}
	return b.String()
}
