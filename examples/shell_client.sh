#!/bin/sh
# Calling gearq tasks with libgearman's `gearman` command-line client (Debian: gearman-tools).
# The tasks are in examples/interop_worker.py; run both with
#
#     python examples/interop_worker.py sh examples/shell_client.sh
#
# or, with a worker already serving: sh examples/shell_client.sh HOST:PORT
# (the default is the first server of GEARQ_SERVERS, else 127.0.0.1:4730).
set -eu

spec=${1:-${GEARQ_SERVERS:-127.0.0.1:4730}}
server=${spec%%,*}
host=${server%:*}
port=${server##*:}
[ "$port" = "$server" ] && port=4730
# -t: the CLI does not ask for exceptions, so a failing task would never answer it.
gm() { gearman -h "$host" -p "$port" -t 15000 "$@"; }

# A raw task: the payload bytes in, the result bytes out, no envelope.
printf 'raw text.upper -> %s\n' "$(gm -f text.upper 'hello from the shell')"

# Any msgpack or JSON task takes a hand-written JSON envelope and answers with one.
printf 'shop.add -> %s\n' "$(gm -f shop.add -u "f:sh-$$-1" '{"v":1,"t":"shop.add","a":[20,22]}')"

# Fire and forget: -b submits a background job (a "b:" unique keeps it apart from callers).
gm -b -f shop.add -u "b:sh-$$-2" '{"v":1,"t":"shop.add","a":[1,1]}'
echo "background shop.add queued"
