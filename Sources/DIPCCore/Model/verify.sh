#!/usr/bin/env bash
# Checks coordinator.pml with spin for both policies (run by `make verify`).
#
#   verify.sh WORKDIR
#
# Per policy: mutual exclusion, bounded bypass and deadlock freedom (assertions and
# invalid end states, exhaustive), then starvation freedom of a reader and of a
# writer (LTL under weak fairness, exhaustive). Then each mutant of the model must
# FAIL, so a check that cannot see a bug does not pass silently. Exits 1 on any
# failure; prints states, depth and time of each run.
set -euo pipefail

model="$(cd "$(dirname "$0")" && pwd)/coordinator.pml"
work="${1:?usage: verify.sh WORKDIR}"
mkdir -p "$work"
cd "$work"

# Exhaustive runs: states are kept collapsed; the DFS stack must hold the deepest path.
PAN_CFLAGS="-w -O2 -DCOLLAPSE -DNFAIR=3"
PAN_RUN="-m10000000 -w26"
failures=0

# run LABEL EXPECT(pass|fail) SPIN_FLAGS PAN_EXTRA_CFLAGS PAN_ARGS
run() {
    local label=$1 expect=$2 spinflags=$3 cflags=$4 panargs=$5
    rm -f pan pan.* _spin_nvr.tmp
    # shellcheck disable=SC2086
    spin $spinflags -a "$model" >spin.out 2>&1 || { cat spin.out; echo "FAIL  $label: spin could not generate the verifier"; failures=$((failures + 1)); return; }
    # shellcheck disable=SC2086
    gcc $PAN_CFLAGS $cflags -o pan pan.c
    local start end out errors states depth
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    out=$(./pan $PAN_RUN $panargs 2>&1) || true
    end=$(date +%s.%N)
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out" | head -1)
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' <<<"$out" | head -1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' <<<"$out" | head -1)
    local verdict=ok
    if [[ -z "$errors" ]]; then
        verdict=bad
    elif grep -q "max search depth too small" <<<"$out"; then
        verdict=bad
    elif [[ $expect == pass && $errors != 0 ]] || [[ $expect == fail && $errors == 0 ]]; then
        verdict=bad
    fi
    if [[ $verdict == ok ]]; then
        printf 'ok    %-58s %10s states  depth %8s  errors %s  %5.1f s\n' "$label" "$states" "$depth" "$errors" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
        if [[ $expect == fail ]]; then
            echo "      as expected: $(grep -m1 -E "violated|invalid end|acceptance cycle" <<<"$out")"
        fi
    else
        printf 'FAIL  %-58s (expected to %s)\n' "$label" "$expect"
        grep -E "error|violated|invalid end|acceptance cycle|depth too small" <<<"$out" | head -5
        failures=$((failures + 1))
    fi
}

for policy in fifo phase-fair; do
    flags=""
    [[ $policy == phase-fair ]] && flags="-DPHASEFAIR"
    run "$policy: exclusion, bounded bypass, no deadlock" pass "$flags" "-DNOCLAIM" ""
    run "$policy: a waiting reader enters (LTL, weak fairness)" pass "$flags -DLIVENESS" "" "-a -f -N readerEntersEventually"
    run "$policy: a waiting writer enters (LTL, weak fairness)" pass "$flags -DLIVENESS" "" "-a -f -N writerEntersEventually"
done

run "mutant fifo, writer ignores readers: exclusion must fail" fail "-DMUTANT_WRITER_IGNORES_READERS" "-DNOCLAIM" ""
run "mutant phase-fair, readers pass queued writers: writer starves" fail "-DPHASEFAIR -DLIVENESS -DMUTANT_READER_IGNORES_QUEUED_WRITERS" "" "-a -f -N writerEntersEventually"
run "mutant fifo, last reader forgets the wake: deadlock" fail "-DMUTANT_LAST_READER_WAKES_NOBODY" "-DNOCLAIM" ""
run "mutant phase-fair, last reader forgets the wake: deadlock" fail "-DPHASEFAIR -DMUTANT_LAST_READER_WAKES_NOBODY" "-DNOCLAIM" ""

if ((failures > 0)); then
    echo "verify: $failures check(s) failed"
    exit 1
fi
echo "verify: all checks passed"
