#!/usr/bin/env bash
# setup.sh — Gradescope runs this once, as root, when it builds the autograder's image from the
# zip that make gradescope makes (the zip's contents are in /autograder/source).
#
# It installs what the grader needs through the lab's own harness/setup (apt-get), with what an
# Ubuntu image may lack besides (python3, which harness/setup itself needs to find the rest, and
# libc6-dev, which apt-get install --no-install-recommends gcc leaves out), checks that the
# installed bats can load the checks' libraries, and builds the load generator. bubblewrap comes
# along for harness/run's sandbox, which it uses where the container allows it (else it falls back).
#
# Untested on Gradescope's image: it cannot be tried from here (no Gradescope image, and no
# network but Debian's packages). What can be tried here, the zip with run_autograder on a fake
# /autograder tree, harness/tests/gradescope-selftest tries; it does not run this script.
set -euo pipefail

# Gradescope unpacks the zip in /autograder/source (AUTOGRADER_ROOT as in run_autograder).
SOURCE=${AUTOGRADER_ROOT:-/autograder}/source
export DEBIAN_FRONTEND=noninteractive

echo "setup.sh: installing python3, the C library headers and bubblewrap with apt-get ..."
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 libc6-dev bubblewrap

# An unzip that drops execute bits would stop the harness from running its own tools.
chmod +x "$SOURCE/run_autograder" "$SOURCE/harness/run" "$SOURCE/harness/setup"

echo "setup.sh: installing the lab's dependencies (harness/setup) ..."
if ! "$SOURCE/harness/setup"; then
    echo "setup.sh: harness/setup failed; its apt-get log follows" >&2
    cat /tmp/lab-setup.log >&2 2>/dev/null || true
    exit 1
fi

# The checks need bats-core 1.7 or later (bats_load_library, bats_require_minimum_version) and the
# bats-support library: an older Ubuntu's bats package is older than that. Say so here, at build
# time, rather than fail every check of every submission.
probe=$(mktemp -d)
cat >"$probe/probe.bats" <<'EOF'
setup() { bats_require_minimum_version 1.5.0 && bats_load_library bats-support; }
@test "bats can load bats-support" { true; }
EOF
if ! bats "$probe/probe.bats" >"$probe/out" 2>&1; then
    echo "setup.sh: $(bats --version) cannot load the checks' libraries (bats-core 1.7 or later and" \
        "bats-support are needed: choose a newer Ubuntu base image for the autograder):" >&2
    cat "$probe/out" >&2
    rm -rf "$probe"
    exit 1
fi
rm -rf "$probe"

echo "setup.sh: building the load generator ..."
make -C "$SOURCE" harness/loadgen/loadgen
echo "setup.sh: done"
