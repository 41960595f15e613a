#!/usr/bin/env bash
# Run every Go fuzz target of the module, one after the other.
#
#   scripts/fuzz.sh [DURATION] [PATTERN]
#
# DURATION is go test's -fuzztime for each target: a duration (60s, 5m) or a
# number of executions (10000x); default 60s. PATTERN, a regular expression,
# limits the targets run (default: all). Targets are found with
# `go test -list '^Fuzz' ./...`; go test fuzzes one target per run, so each runs
# on its own, as:
#
#   go test -run '^$' -fuzz '^NAME$' -fuzztime DURATION ./pkg
#
# A target that fails leaves its failing input in the package's
# testdata/fuzz/NAME/ directory; the summary says how to reproduce it. A run
# that fails only with "context deadline exceeded" and found nothing is Go 1.26's
# fuzz coordinator tripping on its own -fuzztime (golang/go#75804): the target is
# run again for as many executions (a count has no deadline), and fails if that
# fails. Exits non-zero if any target fails.
#
# Environment: GO (default go); FUZZ_PARALLEL, fuzzing workers per target
# (default: go test's, GOMAXPROCS); FUZZ_FLAGS, more go test flags (e.g.
# -overlay=FILE or -race); FUZZ_LOG_DIR, where to keep each target's output
# (default: a temporary directory, removed at the end).
set -euo pipefail

duration="${1:-60s}"
pattern="${2:-.}"
GO="${GO:-go}"

cd "$(dirname "$0")/.."

# seconds DURATION: the seconds in a duration like 90s, 5m or 1h30m, or nothing.
seconds() {
	local d="$1" total=0 n unit
	[[ "$d" =~ ^([0-9]+[hms])+$ ]] || return 0
	while [[ "$d" =~ ^([0-9]+)([hms])(.*)$ ]]; do
		n="${BASH_REMATCH[1]}" unit="${BASH_REMATCH[2]}" d="${BASH_REMATCH[3]}"
		case "$unit" in
		h) total=$((total + n * 3600)) ;;
		m) total=$((total + n * 60)) ;;
		s) total=$((total + n)) ;;
		esac
	done
	echo "$total"
}

# The test binary's timeout must cover the fuzzing, plus building and running
# the seed corpus.
timeout_flag=()
if secs="$(seconds "$duration")" && [ -n "$secs" ]; then
	timeout_flag=(-timeout "$((secs + 600))s")
fi

# shellcheck disable=SC2206 # FUZZ_FLAGS is a list of flags
extra=(${FUZZ_FLAGS:-})
if [ -n "${FUZZ_PARALLEL:-}" ]; then
	extra+=(-parallel "$FUZZ_PARALLEL")
fi

echo "==> finding fuzz targets"
listing="$("$GO" test "${extra[@]}" -list '^Fuzz' ./... 2>&1)" || {
	echo "$listing" >&2
	echo "fuzz.sh: go test -list failed" >&2
	exit 1
}
# go test -list prints a package's matching names, then "ok <package> <time>".
targets=()
names=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	"ok "*)
		pkg="$(awk '{print $2}' <<<"$line")"
		for n in "${names[@]}"; do
			if [[ "$n" =~ $pattern ]]; then
				targets+=("$pkg $n")
			fi
		done
		names=()
		;;
	esac
done <<<"$listing"

if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz.sh: no fuzz target matches ${pattern@Q}" >&2
	exit 1
fi
echo "    ${#targets[@]} targets, ${duration} each"

if [ -n "${FUZZ_LOG_DIR:-}" ]; then
	logs="$FUZZ_LOG_DIR"
	mkdir -p "$logs"
else
	logs="$(mktemp -d)"
	trap 'rm -rf "$logs"' EXIT
fi

# deadline_race LOG: the run failed only with "context deadline exceeded", with no
# failing input written, no failing seed and no panic.
deadline_race() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -qE 'Failing input written to|failure while testing seed corpus|panic:|^[[:space:]]+[a-z_]+_test\.go:[0-9]+:' "$1"
}

summary=()
failed=0
for t in "${targets[@]}"; do
	pkg="${t% *}" name="${t#* }"
	log="$logs/${pkg//\//_}.${name}.log"
	echo
	echo "==> $name ($pkg), $duration"
	start=$SECONDS
	status=ok
	# Show progress as it comes, and keep it for the summary.
	note=""
	if ! "$GO" test "${extra[@]}" "${timeout_flag[@]}" -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" "$pkg" 2>&1 | tee "$log"; then
		status=FAIL
		if deadline_race "$log"; then
			# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as
			# a failure (golang/go#75804, fixed in Go 1.27): nothing was found.
			# Run the target again for as many executions, which has no deadline.
			runs="$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | awk '{print $2}' || true)"
			echo "==> $name: the fuzz coordinator's deadline race (golang/go#75804), nothing found; again for ${runs:-10000} executions"
			if "$GO" test "${extra[@]}" "${timeout_flag[@]}" -run '^$' -fuzz "^${name}\$" -fuzztime "${runs:-10000}x" "$pkg" 2>&1 | tee -a "$log"; then
				status=ok note=" (run again after golang/go#75804)"
			fi
		fi
		[ "$status" = FAIL ] && failed=$((failed + 1))
	fi
	took=$((SECONDS - start))
	execs="$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | awk '{print $2}' || true)"
	found="$(grep -o 'new interesting: [0-9]*' "$log" | tail -n 1 | awk '{print $3}' || true)"
	line="$(printf '%-4s  %-24s %-28s %5ss  execs %-10s new corpus entries %s%s' \
		"$status" "$name" "$pkg" "$took" "${execs:-?}" "${found:-?}" "$note")"
	if [ "$status" = FAIL ]; then
		# go test names the failing input (a seed, or a new one it wrote) and how to re-run it.
		how="$(grep -E 'failure while testing seed corpus entry|Failing input written to|To re-run:|^ +go test -run=' "$log" | sed 's/^[[:space:]]*/      /' || true)"
		line+=$'\n'"${how:-      see the output above} ($pkg)"
	fi
	summary+=("$line")
done

echo
echo "==> fuzz summary ($duration per target)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -gt 0 ]; then
	echo "fuzz.sh: $failed of ${#targets[@]} targets failed" >&2
	exit 1
fi
echo "all ${#targets[@]} targets passed"
