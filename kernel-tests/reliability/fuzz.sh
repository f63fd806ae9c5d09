#!/usr/bin/env bash
# fuzz.sh TIME CORPUS JOBS — every native fuzz target of the module (func FuzzXxx(f *testing.F) in any
# test file) fuzzed for TIME each, JOBS targets at a time, the machine's cores shared out among them
# (-parallel). CORPUS=1 writes new interesting inputs to the package's testdata/fuzz/FuzzXxx, which go
# test replays as seeds (commit them); a crash leaves its input there whatever CORPUS is. Run from the
# module's root (the Makefile's fuzz targets do).
set -euo pipefail
time=${1:?TIME} corpus=${2:?CORPUS} jobs=${3:?JOBS}
go=${GO:-go}
workers=$(( $(nproc) / jobs )); (( workers >= 1 )) || workers=1
mkdir -p build/fuzz

# one fuzzes target $2 of package dir $1; its output goes to build/fuzz/PACKAGE-TARGET.out (two packages
# may name a target alike), and only a summary line
# (or, on failure, the whole output) to stdout, in one write, so jobs do not interleave mid-line.
one() {
	local dir=$1 t=$2 cache=""
	local out=build/fuzz/$(echo "${dir#./}" | tr / -)-$t.out
	[ "$corpus" = 1 ] && cache="-test.fuzzcachedir=$PWD/$dir/testdata/fuzz"
	for try in 1 2; do
		if "$go" test -run '^$' -fuzz "^$t\$" -fuzztime "$time" -parallel "$workers" "$dir" $cache > "$out" 2>&1; then
			echo "fuzz $dir $t for $time ($workers workers): $(tail -1 "$out")"
			return 0
		fi
		# The coordinator's deadline race (go.dev/issue/75804, fixed in Go 1.27) fails a run that found
		# nothing; a run that wrote a failing input is a real failure.
		if [ $try = 1 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
			echo "fuzz $dir $t: the coordinator's deadline race (go.dev/issue/75804), no failing input: once more"
			continue
		fi
		{ echo "fuzz $dir $t FAILED:"; cat "$out"; }
		return 1
	done
}
export -f one
export go time corpus workers

for f in $(grep -rl --include='*_test.go' --exclude-dir=build --exclude-dir=testdata '^func Fuzz' . | sort); do
	for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing.F).*/\1/p' "$f"); do
		echo "$(dirname "$f") $t"
	done
done | xargs -P "$jobs" -L 1 bash -c 'one "$@"' _
