#!/usr/bin/env bash
# Re-checks loom's verdict on every seeded bug: runs the model files each
# bug concerns and prints, per test, "ok" (the model is not sensitive to
# that bug) or loom's first failure message.
#
#   loom-tests/check-bugs.sh                  # every bug, its model files
#   loom-tests/check-bugs.sh lost-wake timed  # one bug, one model file
#   loom-tests/check-bugs.sh stale_new        # one bug compiled into the crate
#
# Two kinds of bugs (README.md, "Seeded bugs"):
# - `bug-*` features of this crate: the models' word misbehaves (the
#   production code is untouched). Checked against the lock models (and
#   the event's, the barrier's, the condition's, the pipe's and the
#   semaphore's, on the same futex stand-in), and
#   those that concern the atomic cells' words too against atomic_ops.
# - logic bugs of the atomic cells, compiled into src/raw/rmw.rs with
#   `--cfg shmsync_atomic_bug="NAME"` (a rebuild of every dependency each,
#   as RUSTFLAGS change). Checked against atomic_ops.
#
# Exits non-zero if some bug is caught by no model at all (the models would
# then have lost their teeth; a build failure shows up the same way), or if
# a test that must catch a bug (MUST_FAIL below) does not. The models
# without any bug are run by the plain `cargo test` (README.md).
set -u
cd "$(dirname "$0")"
BASE_FLAGS="--cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export RUST_BACKTRACE=0

LOCK_MODELS=(mutex recursion timed wakeup owner_death event barrier condition pipe semaphore)
FEATURE_BUGS=(lost-wake weak-release weak-acquire split-cas no-waiters-bit
              acquire-drops-waiters no-owner-died-bit keeps-owner-died
              liveness-relaxed event-no-generation barrier-keeps-count
              barrier-drops-broken cond-no-advance cond-no-register pipe-close-lost
              sem-taker-drops-waiters ring-anonymous-claim ring-drops-waiters)
CFG_BUGS=(stale_new no_retry bool_bytes)

# The model files a bug is checked against.
models_of() {
    case $1 in
        weak-release | weak-acquire | split-cas) echo "${LOCK_MODELS[*]} atomic_ops ring" ;;
        lost-wake | liveness-relaxed) echo "${LOCK_MODELS[*]} ring" ;;
        ring-anonymous-claim | ring-drops-waiters) echo ring ;;
        stale_new | no_retry | bool_bytes) echo atomic_ops ;;
        event-no-generation) echo event ;;
        barrier-keeps-count | barrier-drops-broken) echo barrier ;;
        cond-no-advance | cond-no-register) echo condition ;;
        pipe-close-lost) echo pipe ;;
        sem-taker-drops-waiters) echo semaphore ;;
        *) echo "${LOCK_MODELS[*]}" ;;
    esac
}

# Tests (file::name, an extended regex) that must each catch the bug: every
# ordering model of the atomic cells exercises one operation of one cell
# type, so a weakened ordering must fail each of them (in its release or
# acquire half), and a declined fetch_update's load is the only thing that
# acquires in declined_fetch_update_acquires.
MUST_FAIL_weak_release='^atomic_ops::cell_'
MUST_FAIL_weak_acquire='^atomic_ops::(cell_|declined_fetch_update_acquires$)'
# The condition's own bugs strand a waiter in every condition model.
MUST_FAIL_cond_no_advance='^condition::'
MUST_FAIL_cond_no_register='^condition::'
# The semaphore's model: each of these bugs breaks a property one of its
# tests exists for (loom-tests/tests/semaphore.rs, the table).
MUST_FAIL_lost_wake='^semaphore::(one_sleeper|two_sleepers_single_releases)$'
MUST_FAIL_split_cas='^semaphore::recovery_exactly_once$'
MUST_FAIL_no_waiters_bit='^semaphore::(one_sleeper|two_sleepers_single_releases)$'
MUST_FAIL_sem_taker_drops_waiters='^semaphore::two_sleepers_single_releases$'
MUST_FAIL_liveness_relaxed='^semaphore::dead_holder_permit_reaches_a_waiter$'

# The first panic message of each failed test in a libtest run's output,
# as "name<TAB>message" (message on one line).
failures() {
    awk '
        /^---- .* stdout ----$/ { name = $2; grab = 0; got[name] = ""; next }
        name != "" && /panicked at/ && got[name] == "" { grab = 1; next }
        grab && (/^stack backtrace:/ || /^note: run with/ || /^$/ || /^---- /) {
            grab = 0; if (got[name] != "") done[name] = 1
        }
        grab && !done[name] { got[name] = got[name] sep[name] $0; sep[name] = " | " }
        END { for (n in got) printf "%s\t%s\n", n, got[n] }'
}

# One test alone (loom's deadlock report aborts the whole test process).
verdict() { # cargo-args... (ends with --test FILE), name in $name
    local out rc
    out=$(cargo test --release -q "$@" -- --exact "$name" --nocapture \
        --test-threads 1 2>&1)
    rc=$?
    if [ $rc = 0 ]; then
        echo "ok"
    else
        printf '%s\n' "$out" | awk '
            /panicked at/ && !done { grab = 1; next }
            grab && (/^stack backtrace:/ || /^note: run with/ || /^$/) { done = 1; grab = 0 }
            grab { printf "%s%s", sep, $0; sep = " | " }
            END { print "" }'
    fi
}

# Prints "file::name: verdict" for every test of one model file: one run of
# the whole file, or one run per test if that run aborted.
check_file() { # file cargo-args...
    local t=$1 out names
    shift
    names=$(cargo test --release -q "$@" --test "$t" -- --list 2>/dev/null |
        sed -n 's/: test$//p')
    if [ -z "$names" ]; then
        echo "$t: BUILD FAILED"
        return
    fi
    out=$(cargo test --release -q "$@" --test "$t" 2>&1)
    if grep -q "^test result:" <<<"$out"; then
        local failed
        failed=$(printf '%s\n' "$out" | failures)
        for name in $names; do
            local v
            v=$(awk -F'\t' -v n="$name" '$1 == n { print $2; f = 1 } END { if (!f) print "ok" }' \
                <<<"$failed")
            echo "$t::$name: ${v:-failed (no message)}"
        done
    else
        for name in $names; do
            echo "$t::$name: $(verdict "$@" --test "$t")"
        done
    fi
}

BUGS=("${FEATURE_BUGS[@]}" "${CFG_BUGS[@]}")
[ $# -ge 1 ] && BUGS=("$1")

status=0
for bug in "${BUGS[@]}"; do
    if [[ " ${CFG_BUGS[*]} " == *" $bug "* ]]; then
        export RUSTFLAGS="$BASE_FLAGS --cfg shmsync_atomic_bug=\"$bug\""
        args=()
    else
        export RUSTFLAGS="$BASE_FLAGS"
        args=(--features "bug-$bug")
    fi
    read -r -a models <<<"$(models_of "$bug")"
    [ $# -ge 2 ] && models=("$2")
    must_var="MUST_FAIL_${bug//-/_}"
    must="${!must_var:-}"
    caught=0
    for t in "${models[@]}"; do
        while IFS= read -r line; do
            echo "$bug $line"
            if [[ $line == *": BUILD FAILED" ]]; then
                status=1
                continue
            fi
            test=${line%%: *}
            v=${line#*: }
            if [ "$v" != ok ]; then
                caught=1
            elif [ -n "$must" ] && [[ $test =~ $must ]]; then
                echo "$bug: $test MUST catch it but passed"
                status=1
            fi
        done < <(check_file "$t" "${args[@]}")
    done
    if [ "$caught" = 0 ]; then
        echo "$bug: NOT CAUGHT by any model"
        status=1
    fi
done
exit $status
