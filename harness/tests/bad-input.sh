#!/usr/bin/env bash
# Prints the bad-input cases of the self-test, one per line: NAME|WORDS THE MESSAGE MUST HOLD|ARGUMENTS
# for harness/run. Makes the fixtures they need in the directory given as $1.
set -euo pipefail
fx=$1
mkdir -p "$fx/nocompile" "$fx/bin"
printf 'int main(void) { return undeclared; }\n' >"$fx/nocompile/server.c"
printf '#!/bin/sh\nexec sleep 30\n' >"$fx/bin/silent"
printf '#!/bin/sh\necho "server: bind 127.0.0.1:8080: Address already in use" >&2\nexit 1\n' >"$fx/bin/dies"
printf 'not a program\n' >"$fx/bin/notexec"
chmod +x "$fx/bin/silent" "$fx/bin/dies"
cat <<LIST
unknown chapter|unknown chapter '42'|42
no chapter|which chapter?|
unknown option|unknown option '--frobnicate'|05 --frobnicate
unknown check|unknown check 'nosuch'|01 --only nosuch
option without its value|needs a value|01 --bin
missing binary|no file at|01 --bin $fx/bin/missing
file that is not executable|is not executable|01 --bin $fx/bin/notexec
--bin with two chapters|grade one chapter|01 02 --bin $fx/bin/dies
submission that does not compile|does not compile|01 --dir $fx/nocompile
directory without server.c|no server.c|01 --dir $fx/bin
server that dies at start|exited at start (status 1)|01 --bin $fx/bin/dies
server that never prints its ready line|never printed its ready line|01 --bin $fx/bin/silent
LIST
