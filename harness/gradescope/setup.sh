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
# bats: Gradescope's Ubuntu 20.04 and 22.04 images package bats 1.2.1, too old for the checks;
# harness/setup then installs pinned npm packages (harness/lib/tools.bash) into the autograder's
# own tree, /autograder/source/tools, where run_autograder finds them. The self-test
# (harness/tests/gradescope-selftest) runs this script with an old bats first on PATH and
# LAB_SETUP_APT=0 (no apt-get: this machine has the packages), then grades the reference.
set -euo pipefail

# Gradescope unpacks the zip in /autograder/source (AUTOGRADER_ROOT as in run_autograder).
SOURCE=${AUTOGRADER_ROOT:-/autograder}/source
export DEBIAN_FRONTEND=noninteractive

if [[ ${LAB_SETUP_APT:-1} != 0 ]]; then
    echo "setup.sh: installing python3, the C library headers and bubblewrap with apt-get ..."
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 libc6-dev bubblewrap
fi
# harness/setup's own bats, when the image's is too old, goes into the autograder's tree.
export LAB_TOOLS=$SOURCE/tools

# An unzip that drops execute bits would stop the harness from running its own tools.
chmod +x "$SOURCE/run_autograder" "$SOURCE/harness/run" "$SOURCE/harness/setup"

echo "setup.sh: installing the lab's dependencies (harness/setup) ..."
if ! "$SOURCE/harness/setup"; then
    echo "setup.sh: harness/setup failed; its apt-get log follows" >&2
    cat /tmp/lab-setup.log >&2 2>/dev/null || true
    exit 1
fi

echo "setup.sh: building the load generator ..."
make -C "$SOURCE" harness/loadgen/loadgen
echo "setup.sh: done"
