# shellcheck shell=bash
# The sandbox of everything the harness starts from a submission: its build, the pre-flight start
# and every check. Sourced by harness/run (the outer layer, per job) and harness/lib/check.bash
# (the inner layer, per process of the submission).
#
# Outer layer, one per check (bubblewrap): private network namespace holding loopback alone,
# private PID namespace (its init is bwrap: when the check ends, everything it started ends), the
# whole file system read-only, a fresh /tmp, and writable only what the harness names (the check's
# log directory). Other submissions are hidden (LAB_SANDBOX_HIDE). As root, the job also runs in
# its own memory and pids cgroup where a controller is available (v1 or v2).
#
# Inner layer, one per process of the submission (inner_argv, then jail_argv): a second
# bubblewrap sandbox nested in the check's, with a PID namespace of its own (it cannot see, signal
# or trace a process of the check, nor tell that a probe runs) and a mount view holding only the
# system's read-only directories (/usr and its links, a few files of /etc), fresh /proc and /dev,
# and sized RAM directories of its own: /lab/work (its home and working directory), /tmp and
# /dev/shm. Its binary is a copy at /lab/server, its source (to build) at /lab/server.c: no path of
# the lab, of the check or of another submission is in view, nor the sockets of /run; the working
# directory, host name and paths are the same in every check. Its options are read from a file
# (bwrap --args), so that its init's command line names no path either. Then a clean environment,
# limits (processes, CPU time, file size, open files, address space except under valgrind and the
# sanitizers), no new privileges, and as root an unprivileged uid that no other grading on the
# machine holds (RLIMIT_NPROC counts per uid and does not bind root). The harness's own processes
# (bats, the clients) keep the instructor's uid: the submission cannot signal, trace or write to
# them, and its output reaches the logs through pipes drained by the harness. The checks watch it
# from outside, through the whole tree of its sandbox's init: a setsid() child is counted.
#
# As a normal user there is no second uid: bwrap makes user namespaces, and the submission runs
# with the instructor's uid in one of its own below its sandbox's init's (jail_argv), so that it can
# trace neither the check (out of view) nor its init (out of reach); the views, namespaces and
# limits are the same. What it lacks is the cgroups: no memory, pids or cpuset bound beyond the
# per-process limits and the sized RAM directories.

# Limits of a submission's processes (a check may set its own nofile, as emfile and limits do).
JAIL_NPROC=${LAB_JAIL_NPROC:-1024}         # tasks (threads too) of its uid: 03 runs 500 threads
JAIL_CPU=${LAB_JAIL_CPU:-600}              # seconds of CPU per process
JAIL_FSIZE=${LAB_JAIL_FSIZE:-67108864}     # bytes per file it writes (64 MiB)
JAIL_NOFILE=${LAB_JAIL_NOFILE:-20000}      # descriptors: the lab's limits check needs 20,000
JAIL_AS=${LAB_JAIL_AS:-8589934592}         # address space, 8 GiB: 03's 500 threads reserve stacks
# shellcheck disable=SC2034 # read by check.bash
JAIL_LOG_MAX=${LAB_JAIL_LOG_MAX:-67108864} # bytes of its stdout, stderr and tool logs kept (64 MiB)
# Limits of one check as a whole (its server, clients and tools), in a cgroup, as root.
SANDBOX_MEM=${LAB_SANDBOX_MEM:-4294967296} # 4 GiB
SANDBOX_PIDS=${LAB_SANDBOX_PIDS:-4096}
# The uids of submissions, far from the uids of people and of subordinate ranges: each grading
# on the machine takes one no other holds (jail_uid_lock).
JAIL_UID_BASE=${LAB_JAIL_UID_BASE:-1500000000}
JAIL_UID_SLOTS=100000
# A build (the compiler on a submission's source): its time and memory.
BUILD_SECONDS=${LAB_BUILD_SECONDS:-60}
BUILD_AS=${LAB_BUILD_AS:-2147483648}       # 2 GiB of address space
# The sandbox's /tmp (RAM): its size.
SANDBOX_TMP_SIZE=${LAB_SANDBOX_TMP_SIZE:-268435456}  # 256 MiB
# Each of the submission's own RAM directories (/lab/work, /tmp, /dev/shm): its size.
INNER_TMP_SIZE=${LAB_INNER_TMP_SIZE:-67108864}      # 64 MiB
# What the submission sees of /etc: what the C library, the compilers and valgrind read.
INNER_ETC=(/etc/alternatives /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d /etc/localtime
    /etc/hosts /etc/nsswitch.conf /etc/protocols /etc/services /sys/devices/system/cpu)

# sandbox_init: what this machine allows. Sets
#   SANDBOX_KIND     root (bwrap + another uid + cgroups), user (bwrap in a user namespace) or none
#   SANDBOX_MISSING  one sentence per piece that is missing ("" when nothing is)
#   SANDBOX_CGROUPS  the cgroup directories of this run (memory, pids), when there are any
sandbox_init() {
    SANDBOX_KIND=none SANDBOX_MISSING="" SANDBOX_CGROUPS=()
    if [[ ${LAB_SANDBOX:-1} == 0 ]]; then
        SANDBOX_MISSING="the sandbox is turned off (LAB_SANDBOX=0)"
        return
    fi
    if ! command -v bwrap >/dev/null 2>&1; then
        SANDBOX_MISSING="bwrap is not installed (Debian package bubblewrap)"
        return
    fi
    local probe
    if ! probe=$(bwrap --unshare-net --unshare-pid --die-with-parent --ro-bind / / --dev /dev --proc /proc \
        -- sh -c 'cat /proc/sys/kernel/ostype >/dev/null && ls /sys/class/net >/dev/null && echo ok' 2>&1) ||
        [[ $probe != *ok ]]; then
        SANDBOX_MISSING="bwrap cannot make network and PID namespaces here (${probe##*$'\n'})"
        return
    fi
    if ((EUID == 0)); then
        SANDBOX_KIND=root
        command -v setpriv >/dev/null 2>&1 || { SANDBOX_KIND=none SANDBOX_MISSING="setpriv is missing (util-linux)"; }
        sandbox_cgroups_init
    else
        SANDBOX_KIND=user
        SANDBOX_MISSING="as a normal user there are no cgroups: a submission's memory, processes and CPU placement are bound per process only, which a greedy one can turn against the machine and the timing of its neighbours (grade as root on a shared machine)"
    fi
}

# sandbox_cgroups_init: a memory and a pids cgroup for this run (v1 hierarchies, or v2's unified
# one), removed by sandbox_cleanup, and with LAB_CPUS (harness/grade --jobs: the job's CPU) a
# cpuset, which sched_setaffinity() cannot leave as it can leave taskset's pinning. What cannot be
# had is named in SANDBOX_MISSING.
sandbox_cgroups_init() {
    local name="lab-$$" d ok=1 cpus=${LAB_CPUS:-}
    if [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/pids ]]; then
        for d in /sys/fs/cgroup/memory/$name /sys/fs/cgroup/pids/$name; do
            mkdir -p "$d" 2>/dev/null && SANDBOX_CGROUPS+=("$d") || ok=0
        done
        ((ok)) && echo "$SANDBOX_MEM" >"/sys/fs/cgroup/memory/$name/memory.limit_in_bytes" 2>/dev/null || ok=0
        ((ok)) && echo "$SANDBOX_PIDS" >"/sys/fs/cgroup/pids/$name/pids.max" 2>/dev/null || ok=0
        d=/sys/fs/cgroup/cpuset/$name
        if ((ok)) && [[ -n $cpus && -d /sys/fs/cgroup/cpuset ]]; then
            mkdir -p "$d" 2>/dev/null && SANDBOX_CGROUPS+=("$d") &&
                cat /sys/fs/cgroup/cpuset/cpuset.mems >"$d/cpuset.mems" 2>/dev/null &&
                echo "$cpus" >"$d/cpuset.cpus" 2>/dev/null || ok=0
        fi
    elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        d=/sys/fs/cgroup/$name
        grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
            grep -qw pids /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || ok=0
        ((ok)) && mkdir -p "$d" 2>/dev/null && SANDBOX_CGROUPS+=("$d") || ok=0
        ((ok)) && echo "$SANDBOX_MEM" >"$d/memory.max" 2>/dev/null || ok=0
        ((ok)) && echo "$SANDBOX_PIDS" >"$d/pids.max" 2>/dev/null || ok=0
        if ((ok)) && [[ -n $cpus ]] && grep -qw cpuset /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
            echo "$cpus" >"$d/cpuset.cpus" 2>/dev/null || ok=0
        fi
    else
        ok=0
    fi
    if ((!ok)); then
        sandbox_cleanup
        SANDBOX_MISSING="no memory, pids${cpus:+ and cpuset} cgroup controller could be used (the per-process limits still hold)"
    fi
}

sandbox_cleanup() {
    local d i
    for d in "${SANDBOX_CGROUPS[@]}"; do
        # Empty once the check's PID namespace is gone; its last processes may take a moment to go.
        for i in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$d" 2>/dev/null && break
            [[ -d $d ]] || break
            sleep 0.1
        done
    done
    SANDBOX_CGROUPS=()
}

# sandbox_argv [--rw DIR]... [--ro PATH]... [--hide DIR]...: the outer command into array SANDBOX_ARGV
# (empty when SANDBOX_KIND is none). Then "${SANDBOX_ARGV[@]}" COMMAND... runs COMMAND inside.
# The directories in LAB_SANDBOX_HIDE (colon-separated: other submissions, the folder they came
# from) are replaced by empty ones; the harness tree and the Python interpreter stay visible.
sandbox_argv() {
    SANDBOX_ARGV=()
    [[ $SANDBOX_KIND != none ]] || return 0
    local rw=() ro=() hide=() d
    while (($#)); do
        case $1 in
            --rw) rw+=("$2") ;;
            --ro) ro+=("$2") ;;
            --hide) hide+=("$2") ;;
        esac
        shift 2
    done
    if [[ -n ${LAB_SANDBOX_HIDE:-} ]]; then
        IFS=: read -r -a d <<<"$LAB_SANDBOX_HIDE"
        hide+=("${d[@]}")
    fi
    if ((${#SANDBOX_CGROUPS[@]})); then
        # Joins the run's cgroups, then becomes bwrap: the whole check is counted there.
        # shellcheck disable=SC2016 # expanded by that sh
        SANDBOX_ARGV+=(sh -c 'while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs" || exit 125; shift; done
            shift; exec "$@"' sandbox "${SANDBOX_CGROUPS[@]}" --)
    fi
    SANDBOX_ARGV+=(bwrap --unshare-net --unshare-pid --unshare-ipc --unshare-uts
        --die-with-parent --new-session --ro-bind / / --dev /dev --proc /proc --size "$SANDBOX_TMP_SIZE" --tmpfs /tmp
        --setenv TMPDIR /tmp)
    for d in "${hide[@]}"; do [[ -d $d ]] && SANDBOX_ARGV+=(--tmpfs "$d"); done
    # What the harness itself runs from must stay in view, even under a hidden or /tmp directory.
    ro+=("$LAB_ROOT_DIR")
    [[ -n ${LAB_PYTHON:-} ]] && ro+=("$(dirname "$(dirname "$(readlink -f "$LAB_PYTHON")")")")
    [[ -n ${LAB_TOOLS_IN_USE:-} ]] && ro+=("$LAB_TOOLS_DIR")  # the lab's own bats (harness/lib/tools.bash)
    [[ -n ${LAB_LOADGEN:-} ]] && ro+=("$LAB_LOADGEN")  # built into the user's cache (harness/run)
    # bwrap makes the missing directories above a bind 0700: the submission's uid could not reach
    # its binary. Those under /tmp or a hidden directory are made first, 0755.
    local made=" " p base i
    for d in "${ro[@]}" "${rw[@]}"; do
        for base in /tmp "${hide[@]}"; do
            [[ $d == "$base"/* ]] || continue
            p=$base
            local rest=${d#"$base"/} part
            IFS=/ read -r -a part <<<"$rest"
            for ((i = 0; i < ${#part[@]} - 1; i++)); do
                p+=/${part[i]}
                [[ $made == *" $p "* ]] || SANDBOX_ARGV+=(--perms 0755 --dir "$p")
                made+="$p "
            done
        done
    done
    for d in "${ro[@]}"; do [[ -e $d ]] && SANDBOX_ARGV+=(--ro-bind "$d" "$d"); done
    for d in "${rw[@]}"; do SANDBOX_ARGV+=(--bind "$d" "$d"); done
    SANDBOX_ARGV+=(--)
}

# inner_argv ARGSFILE [--exe | --src] [--out DIR] [--info]: the submission's own sandbox, nested in
# the check's, into INNER_ARGV (empty when there is no sandbox: plain bats, or none on this machine),
# its options into ARGSFILE. The caller runs "${INNER_ARGV[@]}" "${JAIL_ARGV[@]}" COMMAND... with
# ARGSFILE on fd 8, and: with --exe the binary on fd 7 (a copy of it is /lab/server), with --src
# the source on fd 7 (/lab/server.c); --out DIR is writable as /lab/out (a build's output); with
# --info, fd 6 receives bwrap's JSON whose child-pid is the sandbox's init (its tree is the
# submission). Then jail_argv's directory is INNER_HOME.
INNER_HOME=/lab/work
inner_argv() {
    local file=$1 data="" out="" info=0 d
    shift
    INNER_ARGV=()
    while (($#)); do
        case $1 in
            --exe) data=/lab/server ;;
            --src) data=/lab/server.c ;;
            --out) out=$2; shift ;;
            --info) info=1 ;;
        esac
        shift
    done
    : >"$file"  # the callers read it on fd 8 whether or not there is a sandbox
    [[ ${LAB_SANDBOX_KIND:-none} == root || ${LAB_SANDBOX_KIND:-none} == user ]] || return 0
    # LAB_INNER_SANDBOX=0: the check's sandbox alone (harness/tests/hostile/run --teeth-inner shows
    # what this layer stops).
    [[ ${LAB_INNER_SANDBOX:-1} == 1 ]] || return 0
    {
        printf '%s\0' --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --new-session --ro-bind /usr /usr
        for d in /bin /sbin /lib /lib32 /lib64 /libx32; do
            if [[ -L $d ]]; then
                printf '%s\0' --symlink "$(readlink "$d")" "$d"
            elif [[ -d $d ]]; then
                printf '%s\0' --ro-bind "$d" "$d"
            fi
        done
        # bwrap would make the directories above a bind 0700: the jail's uid could not reach them.
        printf '%s\0' --perms 0755 --dir /etc --perms 0755 --dir /sys --perms 0755 --dir /sys/devices \
            --perms 0755 --dir /sys/devices/system
        for d in "${INNER_ETC[@]}"; do
            [[ -e $d ]] && printf '%s\0' --ro-bind "$d" "$d"
        done
        printf '%s\0' --proc /proc --dev /dev --perms 1777 --size "$INNER_TMP_SIZE" --tmpfs /tmp \
            --perms 1777 --size "$INNER_TMP_SIZE" --tmpfs /dev/shm --perms 0755 --dir /lab \
            --perms 1777 --size "$INNER_TMP_SIZE" --tmpfs "$INNER_HOME"
        # A file of the sandbox's root, read-only with it: a bind of bwrap's unlinked copy
        # (--ro-bind-data) is "/lab/server (deleted)" to valgrind, which then finds no debug
        # information (its reports said "??? (in /lab/server (deleted))" instead of server.c:LINE).
        [[ $data == /lab/server ]] && printf '%s\0' --perms 0555 --file 7 /lab/server
        [[ $data == /lab/server.c ]] && printf '%s\0' --perms 0444 --ro-bind-data 7 /lab/server.c
        [[ -n $out ]] && printf '%s\0' --bind "$out" /lab/out
        ((info)) && printf '%s\0' --info-fd 6
        # Its root and /dev are RAM disks of bwrap's with no size, which a normal user's submission
        # would own (its uid is the namespace's): read-only, only its three sized directories stay
        # writable (and the devices, whose writes go to no file system).
        printf '%s\0' --remount-ro / --remount-ro /dev --chdir "$INNER_HOME"
    } >"$file"
    # Its init is a fork of this bwrap: with no environment, and no path on its command line.
    INNER_ARGV=(env -i PATH=/usr/local/bin:/usr/bin:/bin bwrap --args 8 --)
}

# jail_uid_lock FILE: as root, sets LAB_JAIL_UID to a uid that no other grading on this machine
# holds, for as long as this shell runs (harness/lib/uidlock.py holds a lock on it until the pipe
# this shell keeps open ends); FILE receives its slot. Nothing to do otherwise. 1 if none was had.
jail_uid_lock() {
    local out=$1 n i dir
    LAB_JAIL_UID=""
    [[ ${SANDBOX_KIND:-none} == root ]] || return 0
    dir=${LAB_JAIL_UID_LOCKS:-}
    if [[ -z $dir ]]; then
        for dir in /run/lock /var/lock /tmp; do [[ -d $dir ]] && break; done
        dir+=/lab-jail-uids
    fi
    : >"$out"
    exec {JAIL_UID_FD}> >(exec "${LAB_PYTHON:-python3}" "$LAB_ROOT_DIR/harness/lib/uidlock.py" "$dir" "$JAIL_UID_SLOTS" >"$out" 2>/dev/null)
    for ((i = 0; i < 200; i++)); do
        read -r n <"$out" 2>/dev/null
        if [[ ${n:-} =~ ^[0-9]+$ ]]; then
            LAB_JAIL_UID=$((JAIL_UID_BASE + n))
            return 0
        fi
        sleep 0.05
    done
    jail_uid_unlock
    return 1
}
jail_uid_unlock() {
    [[ -n ${JAIL_UID_FD:-} ]] && exec {JAIL_UID_FD}>&-
    JAIL_UID_FD=""
}

# jail_argv DIR [--no-as | --build]: the inner command, into array JAIL_ARGV, for one process of
# the submission whose scratch directory (its home, temporary files and working directory) is DIR.
# --no-as: no address-space limit (valgrind and the sanitizers reserve terabytes they never use;
# the cgroup's memory limit holds them). --build: a compiler's limits (BUILD_AS, BUILD_SECONDS of
# CPU; the caller bounds its wall-clock time). Reads LAB_SANDBOX_KIND and LAB_JAIL_UID
# (harness/run exports them); outside harness/run (plain bats) JAIL_ARGV only sets the environment.
jail_argv() {
    local dir=$1 as=$JAIL_AS cpu=$JAIL_CPU v
    case ${2:-} in
        --no-as) as="" ;;
        --build) as=$BUILD_AS cpu=$BUILD_SECONDS ;;
    esac
    # A clean environment: what the harness sets explicitly, and nothing of the instructor's (no
    # VALGRIND_OPTS, no *SAN_OPTIONS but the checks' own; HOME without a .valgrindrc).
    JAIL_ARGV=(env -i -C "$dir" PATH=/usr/local/bin:/usr/bin:/bin HOME="$dir" TMPDIR="$dir" LANG=C.UTF-8)
    for v in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LSAN_OPTIONS; do
        [[ -n ${!v:-} ]] && JAIL_ARGV+=("$v=${!v}")
    done
    # Limits whenever harness/run starts it (even without bwrap); plain bats sets the environment alone.
    [[ -n ${LAB_SANDBOX_KIND:-} ]] || return 0
    JAIL_ARGV+=(prlimit --nproc="$JAIL_NPROC" --cpu="$cpu" --fsize="$JAIL_FSIZE" --nofile="$JAIL_NOFILE" --core=0)
    [[ -n $as ]] && JAIL_ARGV+=(--as="$as")
    JAIL_ARGV+=(-- setpriv --no-new-privs)
    if [[ $LAB_SANDBOX_KIND == root && -n ${LAB_JAIL_UID:-} ]]; then
        JAIL_ARGV+=(--reuid="$LAB_JAIL_UID" --regid="$LAB_JAIL_UID" --clear-groups --inh-caps=-all --bounding-set=-all)
    fi
    JAIL_ARGV+=(--)
    # As a normal user the sandbox's init (bwrap) has the submission's uid: in the same user
    # namespace, the submission could trace it, or read and write its memory through /proc/1/mem.
    # A user namespace of the submission's own, below the init's, puts the init out of its reach
    # (tracing a process of a parent user namespace takes CAP_SYS_PTRACE there); the same uid is
    # mapped, and exec() leaves it no capability. (A seccomp filter could not do it: ptrace is
    # what LeakSanitizer stops the server's threads with, and /proc/1/mem is not a system call.)
    [[ $LAB_SANDBOX_KIND == user ]] && JAIL_ARGV+=(unshare --user --map-current-user --)
    return 0
}

# forged_options BINARY: the sanitizer hooks a submission defines to override the options the
# harness sets (a TSan build defining __tsan_default_options could say report_bugs=0), if any.
forged_options() {
    nm --defined-only "$1" 2>/dev/null | awk '$3 ~ /^__(a|t|ub|l|m|hwa)san_default_(options|suppressions)$/ { print $3 }' |
        sort -u | paste -sd ' '
}

# sandbox_probe: the limits the hostile submissions' self-test relies on, checked from inside a
# sandboxed, jailed process as a submission would see them. Prints one line per limit that is NOT
# in force (nothing when all are) and returns 1 if any is missing. Call after sandbox_init.
sandbox_probe() {
    local dir rc=0 uid
    [[ $SANDBOX_KIND != none ]] || { echo "no sandbox: $SANDBOX_MISSING"; return 1; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/lab-probe.XXXXXX") || return 1
    chmod 755 "$dir"
    jail_uid_lock "$dir/uid" || { echo "no jail uid could be had"; rm -rf "$dir"; return 1; }
    uid=$LAB_JAIL_UID
    sandbox_argv --rw "$dir"
    LAB_SANDBOX_KIND=$SANDBOX_KIND inner_argv "$dir/args"
    LAB_SANDBOX_KIND=$SANDBOX_KIND LAB_JAIL_UID=$uid jail_argv "$INNER_HOME"
    # shellcheck disable=SC2016 # expanded by that bash
    "${SANDBOX_ARGV[@]}" "${INNER_ARGV[@]}" "${JAIL_ARGV[@]}" bash -c '
        # The paths come with % for / (else they would be on the command lines looked at).
        root=${1//%//} kind=$2 want_uid=$3 nproc=$4 probe=${5//%//}
        ifs=$(awk -F: "NR > 2 { gsub(/ /, \"\", \$1); print \$1 }" /proc/net/dev | grep -vx lo)
        [[ -z $ifs ]] || echo "network interfaces beyond loopback are visible: $ifs"
        for p in /proc/[0-9]*; do
            tr "\0" " " <"$p/cmdline" 2>/dev/null | grep -q -- "--unshare-ne[t]" && echo "a process of the check is visible: $p"
        done
        lim=$(ulimit -u)
        [[ $lim == "$nproc" ]] || echo "the process limit is $lim, not $nproc"
        if [[ $kind == root ]]; then
            [[ $(id -u) == "$want_uid" && $(id -u) != 0 ]] || echo "runs as uid $(id -u), not $want_uid"
        fi
        for p in "$root" "$probe" /run /var /home /root /etc/shadow /etc/passwd; do
            [[ ! -e $p ]] || echo "$p is in view"
        done
        tr "\0" " " </proc/1/cmdline | grep -qe "$root" -e "$probe" && echo "its init names a path of the lab: $(tr "\0" " " </proc/1/cmdline)"
        # What a tracer of the init could also do: read its environment.
        head -c 1 /proc/1/environ >/dev/null 2>&1 && echo "its init is within its reach (/proc/1/environ can be read)"
        for d in "$HOME" /tmp /dev/shm; do
            f=$d/.lab-probe-$$
            if (: >"$f") 2>/dev/null; then rm -f "$f"; else echo "$d is not writable"; fi
            grep -q " $d .* - tmpfs " /proc/self/mountinfo || echo "$d is not a RAM directory of its own"
        done
        [[ $PWD == /lab/work && $(hostname) == "$(cat /proc/sys/kernel/hostname)" ]] || echo "working directory $PWD"
    ' probe "${LAB_ROOT_DIR//\//%}" "$SANDBOX_KIND" "$uid" "$JAIL_NPROC" "${dir//\//%}" >"$dir/out" 2>&1 8<"$dir/args" || rc=1
    jail_uid_unlock
    if [[ -s $dir/out ]]; then
        cat "$dir/out"
        rc=1
    fi
    rm -rf "$dir"
    return $rc
}
