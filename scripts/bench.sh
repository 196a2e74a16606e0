#!/usr/bin/env bash
# Runs holdd's Go benchmarks (no lnd) COUNT times each and prints a Markdown
# table of medians, with the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

# Memory per held HTLC is a size, measured in a run of its own: next to
# other benchmarks their garbage skews it, and those values must not enter
# its median.
go test -run '^$' -bench . -skip '^BenchmarkMemoryPerHeld$' \
	-benchtime "$BENCHTIME" -count "$COUNT" \
	./plugin ./interceptor ./release ./release/onionmsg ./store >"$raw"
go test -run '^$' -bench '^BenchmarkMemoryPerHeld$' -benchtime 1x \
	-count "$COUNT" ./plugin >>"$raw"

cores=$(nproc)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "Machine: $cores cores, $mem, $cpu, $(go version | cut -d' ' -f3)."
echo "Medians of $COUNT runs (\`COUNT=$COUNT BENCHTIME=$BENCHTIME scripts/bench.sh\`)."
echo
echo "| package | benchmark | median | unit | B/op | allocs/op |"
echo "|---|---|---|---|---|---|"
awk '
/^pkg: / { pkg = $2; sub(/^github.com\/holdd\/holdd\//, "", pkg) }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) {
		unit = $(i + 1)
		if (name == "BenchmarkMemoryPerHeld" && unit == "ns/op") continue
		key = pkg " " name
		if (unit == "B/op") { bop[key] = $i; continue }
		if (unit == "allocs/op") { aop[key] = $i; continue }
		row = key " " unit
		if (!(row in seen)) { seen[row] = 1; order[++n] = row }
		vals[row] = vals[row] " " $i
	}
}
function median(s,    a, k, i, j, t) {
	k = split(s, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
		if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
	for (i = 1; i <= n; i++) {
		split(order[i], p, " "); key = p[1] " " p[2]
		printf "| %s | %s | %s | %s | %s | %s |\n", p[1], p[2],
			median(vals[order[i]]), p[3],
			(p[3] == "ns/op" && key in bop) ? bop[key] : "",
			(p[3] == "ns/op" && key in aop) ? aop[key] : ""
	}
}' "$raw"
