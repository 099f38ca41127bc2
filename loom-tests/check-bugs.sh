#!/usr/bin/env bash
# Re-checks loom's verdict on every seeded bug: runs each model file with
# each `bug-*` feature of this crate and prints, per test, "ok" (the model
# is not sensitive to that bug) or loom's first failure message.
#
#   loom-tests/check-bugs.sh                 # every bug, every model file
#   loom-tests/check-bugs.sh lost-wake timed # one bug, one model file
#
# Exits non-zero if some bug is caught by no model at all (the models would
# then have lost their teeth; a build failure shows up the same way). The
# models without any bug are run by the plain `cargo test` (README.md).
set -u
cd "$(dirname "$0")"
export RUSTFLAGS="--cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"

BUGS=(lost-wake weak-release weak-acquire no-waiters-bit acquire-drops-waiters
      no-owner-died-bit keeps-owner-died liveness-relaxed)
MODELS=(mutex recursion timed wakeup owner_death)
[ $# -ge 1 ] && BUGS=("$1")
[ $# -ge 2 ] && MODELS=("$2")

export RUST_BACKTRACE=0

# loom's deadlock report aborts the test process, so each test runs alone.
verdict() { # feature-args... -- test-file test-name
    local out rc
    out=$(cargo test --release -q "$@" -- --exact "$name" --nocapture \
        --test-threads 1 2>&1)
    rc=$?
    if [ $rc = 0 ]; then
        echo "ok"
    else
        # The first panic message (up to the backtrace note), on one line.
        printf '%s\n' "$out" | awk '
            /panicked at/ && !done { grab = 1; next }
            grab && (/^stack backtrace:/ || /^note: run with/ || /^$/) { done = 1; grab = 0 }
            grab { printf "%s%s", sep, $0; sep = " | " }
            END { print "" }'
    fi
}

status=0
for bug in "${BUGS[@]}"; do
    caught=0
    for t in "${MODELS[@]}"; do
        tests=$(cargo test --release -q --features "bug-$bug" --test "$t" \
            -- --list 2>/dev/null | sed -n 's/: test$//p')
        for name in $tests; do
            v=$(verdict --features "bug-$bug" --test "$t")
            [ "$v" = ok ] || caught=1
            echo "bug-$bug $t::$name: $v"
        done
    done
    if [ "$caught" = 0 ]; then
        echo "bug-$bug: NOT CAUGHT by any model"
        status=1
    fi
done
exit $status
