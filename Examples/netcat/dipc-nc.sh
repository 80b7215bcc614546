#!/usr/bin/env bash
# Talks to a dipc server with nothing but bash and netcat (netcat-openbsd).
#
#   dipc-nc.sh [-h HOST] [-p PORT] read N          the value of mailbox N, exactly
#   dipc-nc.sh [-h HOST] [-p PORT] write N TEXT    set mailbox N; prints the new version
#   dipc-nc.sh [-h HOST] [-p PORT] push N TEXT     append TEXT to mailbox N's queue
#   dipc-nc.sh [-h HOST] [-p PORT] take N [WAIT_MS]  take the oldest message (waits up to WAIT_MS)
#   dipc-nc.sh [-h HOST] [-p PORT] info | stats
#   dipc-nc.sh [-h HOST] [-p PORT] chat ME THEM    chat: lines you type go to mailbox THEM's
#                                                  queue; messages in mailbox ME's queue are shown
#
# Each request opens one connection, sends the request and `q`, and reads until the
# server closes after `bye`. Exit 0 on success, 1 on `err` (the line on stderr), 2 on
# bad usage. The protocol: docs/PROTOCOL.md.
set -u
host=127.0.0.1
port=${DIPC_PORT:-7070}
usage() { sed -n '4,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while getopts "h:p:" opt; do
    case $opt in
        h) host=$OPTARG ;;
        p) port=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage

# Sends stdin's bytes to the server, then `q`; prints the raw reply (ending in `bye`).
exchange() { { cat; printf 'q\n'; } | nc "$host" "$port"; }

# Reads one reply from stdin: on `ok LEN VERSION` prints the LEN data bytes;
# on `ok ...` prints the rest of the line; on `err` prints it on stderr and fails.
reply() {
    local header
    IFS= read -r header || { echo "dipc-nc: no reply from $host:$port" >&2; return 1; }
    header=${header%$'\r'}
    case $header in
        err*) echo "dipc-nc: $header" >&2; return 1 ;;
        "ok dipc/1 "*) echo "${header#ok dipc/1 }" | tr ' ' '\n' ;;
        ok*=*) echo "${header#ok }" | tr ' ' '\n' ;;
        "ok "*" "*) set -- $header; head -c "$2" ;;
        "ok "*) echo "${header#ok }" ;;
        *) echo "dipc-nc: unexpected reply: $header" >&2; return 1 ;;
    esac
}

# Prints a length-prefixed request: HEADER_WITHOUT_LEN, TEXT -> "HEADER LEN\nTEXT".
with_data() { printf '%s %d%s\n%s' "$1" "$(printf '%s' "$3" | LC_ALL=C wc -c)" "$2" "$3"; }

number() { [[ ${1:-} =~ ^[0-9]+$ ]] || usage; }

case $1 in
    read)  [ $# -eq 2 ] && number "$2" || usage; printf 'r %s\n' "$2" | exchange | reply ;;
    write) [ $# -eq 3 ] && number "$2" || usage; with_data "w $2" "" "$3" | exchange | reply ;;
    push)  [ $# -eq 3 ] && number "$2" || usage; with_data "p $2" "" "$3" | exchange | reply ;;
    take)  [ $# -ge 2 ] && [ $# -le 3 ] && number "$2" || usage
           [ $# -eq 2 ] || number "$3"
           printf 'c %s %s\n' "$2" "${3:-0}" | exchange | reply ;;
    info)  [ $# -eq 1 ] || usage; printf 'i\n' | exchange | reply ;;
    stats) [ $# -eq 1 ] || usage; printf 's\n' | exchange | reply ;;
    chat)
        [ $# -eq 3 ] && number "$2" && number "$3" || usage
        me=$2; them=$3
        # Receiver: waits up to a second at a time for a message in our queue. It runs
        # in its own process group (set -m) so that leaving kills it with the nc of a
        # take in flight: a client gone while it waits takes nothing, so no message is lost.
        set -m
        (
            while :; do
                message=$(printf 'c %s 1000\n' "$me" | exchange | reply 2>/dev/null) && printf '< %s\n' "$message"
            done
        ) &
        receiver=$!
        set +m
        # SIGKILL: the loop holds nothing, and a TERM can be blocked by the parent's signal mask.
        trap 'kill -KILL -- -$receiver 2>/dev/null; wait $receiver 2>/dev/null' EXIT
        while IFS= read -r line; do
            with_data "p $them" " 1000" "$line" | exchange | reply >/dev/null || echo "dipc-nc: not sent: $line" >&2
        done
        ;;
    *) usage ;;
esac
