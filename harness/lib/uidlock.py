#!/usr/bin/env python3
"""Hands out jail uids that no other grading on this machine holds at the same time.

    uidlock.py DIR COUNT

Takes the first free slot of 0 .. COUNT-1, each a file DIR/N locked with flock(), prints its
number and holds the lock until its standard input ends (harness/run keeps the other end of that
pipe open while it runs, so the slot is freed when harness/run ends, however it ends). Exit 1 when
every slot is taken, 2 when DIR is not safe to use (it must be a directory of this user's, not a
link, writable by nobody else).

The uid is JAIL_UID_BASE + N (lib/sandbox.bash). A slot number alone, as harness/grade's job
slots were, gives two gradings running at once the same uid: the processes of one count against
the other's process limit, and one could signal the other's server.
"""

import fcntl
import os
import stat
import sys


def safe_dir(path):
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        sys.exit(2)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, count = sys.argv[1], int(sys.argv[2])
    safe_dir(path)
    for n in range(count):
        fd = os.open(os.path.join(path, str(n)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        print(n, flush=True)
        # Held until harness/run's end of the pipe closes.
        while sys.stdin.buffer.read(4096):
            pass
        return
    sys.exit(1)


if __name__ == "__main__":
    main()
