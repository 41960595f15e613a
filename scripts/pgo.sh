#!/usr/bin/env bash
# Refresh cmd/devicehooks/default.pgo, the CPU profile the Go compiler uses to
# optimise the server (profile-guided optimisation: `go build` picks up a
# default.pgo in the main package's folder by itself).
#
#   scripts/pgo.sh
#
# It runs the benchmark against the embedded broker with --profile (2,000
# players, 10 s per load phase, about 3 minutes), and merges the server's CPU
# profiles of every phase (the load phases and the fan-out; not the benchmark
# process's own) into one. Run it on an otherwise idle machine after a change to
# the trigger path, and commit the new file with the figures of a before/after
# pair of runs (docs/benchmark-history.md, the seventeenth session: "Profile-guided optimisation").
#
# Environment: GO (default go); PGO_BENCH_FLAGS, more flags for cmd/bench.
set -euo pipefail

GO="${GO:-go}"
cd "$(dirname "$0")/.."
dir="$(mktemp -d)"
trap 'rm -rf "$dir" cmd/devicehooks/default.pgo.new' EXIT

# shellcheck disable=SC2086 # PGO_BENCH_FLAGS is a list of flags
"$GO" run ./cmd/bench --brokers embedded --players 2000 --duration 10s \
	--fanout-reps 1 --profile "$dir/prof" --results "$dir/results" ${PGO_BENCH_FLAGS:-}

shopt -s nullglob
profiles=()
for f in "$dir"/prof/*-cpu.pprof; do
	case "$(basename "$f")" in
	*bench*) ;; # the benchmark process's own profile
	*) profiles+=("$f") ;;
	esac
done
if [ "${#profiles[@]}" -eq 0 ]; then
	echo "pgo: the benchmark saved no server CPU profile" >&2
	exit 1
fi
# Written beside it and renamed: a half-written profile would break every build.
"$GO" tool pprof -proto "${profiles[@]}" >cmd/devicehooks/default.pgo.new
mv cmd/devicehooks/default.pgo.new cmd/devicehooks/default.pgo
echo "pgo: cmd/devicehooks/default.pgo from ${#profiles[@]} profiles:" "${profiles[@]##*/}"
