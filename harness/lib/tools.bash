# harness/lib/tools.bash — the lab's own copy of bats, where the system's is too old.
#
# The checks need bats-core 1.7 or later (bats_require_minimum_version, bats_load_library) with
# bats-support and bats-assert. Debian 12 and Ubuntu 24.04 package those; Ubuntu 20.04 and 22.04
# (Gradescope's base images) package bats 1.2.1. There, harness/setup installs the pinned npm
# packages below into LAB_TOOLS (default ~/.cache/concurrent-servers-lab/tools), and sourcing
# this file puts them first on PATH and BATS_LIB_PATH for harness/run and the self-test.

LAB_BATS_PINS=(bats@1.13.0 bats-support@0.3.0 bats-assert@2.2.4)
LAB_TOOLS_DIR=${LAB_TOOLS:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/concurrent-servers-lab/tools}

# lab_tools_use: the lab's copy, when there is one, comes first; LAB_TOOLS_IN_USE says so (the
# sandbox keeps the directory in view then).
lab_tools_use() {
    [[ -x $LAB_TOOLS_DIR/node_modules/bats/bin/bats && -z ${LAB_TOOLS_IN_USE:-} ]] || return 0
    PATH="$LAB_TOOLS_DIR/node_modules/bats/bin:$PATH"
    BATS_LIB_PATH="$LAB_TOOLS_DIR/node_modules${BATS_LIB_PATH:+:$BATS_LIB_PATH}"
    LAB_TOOLS_IN_USE=1
    export PATH BATS_LIB_PATH LAB_TOOLS_DIR LAB_TOOLS_IN_USE
}

# lab_bats_lib LIB: status 0 when bats_load_library can find LIB (in BATS_LIB_PATH, /usr/lib/bats
# by default).
lab_bats_lib() {
    local d dirs
    IFS=: read -r -a dirs <<<"${BATS_LIB_PATH:-/usr/lib/bats}"
    for d in "${dirs[@]}"; do [[ -f $d/$1/load.bash ]] && return 0; done
    return 1
}

# lab_bats_problem: nothing (status 0) when the bats on PATH can run the checks; else one line
# saying why not (status 1).
lab_bats_problem() {
    local v lib
    v=$(bats --version 2>/dev/null) || { echo "no bats on PATH"; return 1; }
    v=${v#Bats }
    if [[ $(printf '%s\n' 1.7.0 "$v" | sort -V | head -n 1) != 1.7.0 ]]; then
        echo "bats $v is older than 1.7"
        return 1
    fi
    for lib in bats-support bats-assert; do
        lab_bats_lib "$lib" || { echo "no $lib in ${BATS_LIB_PATH:-/usr/lib/bats}"; return 1; }
    done
}

# lab_tools_install: the pinned packages from the npm registry into LAB_TOOLS_DIR, then used; one
# line says what was installed. Status 1, with the reason, if npm is missing or fails.
lab_tools_install() {
    local why=$1 log
    command -v npm >/dev/null 2>&1 || { echo "setup: $why, and npm is not installed to fetch a newer one" >&2; return 1; }
    mkdir -p "$LAB_TOOLS_DIR" || return 1
    log=$LAB_TOOLS_DIR/npm.log
    if ! npm install --prefix "$LAB_TOOLS_DIR" --no-audit --no-fund --no-save "${LAB_BATS_PINS[@]}" >"$log" 2>&1; then
        echo "setup: $why, and npm could not install ${LAB_BATS_PINS[*]}; see $log" >&2
        return 1
    fi
    lab_tools_use
    echo "setup: $why: installed ${LAB_BATS_PINS[*]} from the npm registry into $LAB_TOOLS_DIR" >&2
}
