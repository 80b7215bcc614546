#!/usr/bin/env bash
# Talks to a dipc server with nothing but bash and netcat (netcat-openbsd), or openssl.
#
#   dipc-nc.sh [OPTIONS] read N          the value of mailbox N, exactly
#   dipc-nc.sh [OPTIONS] write N TEXT    set mailbox N; prints the new version
#   dipc-nc.sh [OPTIONS] push N TEXT     append TEXT to mailbox N's queue
#   dipc-nc.sh [OPTIONS] take N [WAIT_MS]  take the oldest message (waits up to WAIT_MS)
#   dipc-nc.sh [OPTIONS] info | stats
#   dipc-nc.sh [OPTIONS] chat ME THEM    chat: lines you type go to mailbox THEM's queue;
#                                        messages in mailbox ME's queue are shown
# OPTIONS: -h HOST, -p PORT (default $DIPC_PORT, else 7070); -U PATH: the server's Unix
#   socket (`dipc --unix`, with `nc -U`); -t: TLS (`dipc --tls-cert`, with
#   `openssl s_client -quiet`), -c CAFILE: the CA that signed the server's certificate
#   (implies -t; else the system's CAs); -a TOKENFILE: send `a TOKEN` first, the token
#   being the file's first line (`dipc --auth-file`; default $DIPC_AUTH_FILE).
#
# Each request opens one connection, sends the request and `q`, and reads until the
# server closes after `bye`. Exit 0 on success, 1 on `err` (the line on stderr), 2 on
# bad usage. The protocol: docs/PROTOCOL.md.
#
# By hand, the same three ways in (`a TOKEN` first when the server has --auth-file):
#   nc -U /run/dipc/dipc.sock
#   openssl s_client -quiet -verify_return_error -CAfile ca.pem -verify_ip 127.0.0.1 -noservername \
#       -connect 127.0.0.1:7070
set -u
host=127.0.0.1
port=${DIPC_PORT:-7070}
unix=""
tls=""
ca=""
auth_file=${DIPC_AUTH_FILE:-}
usage() { sed -n '4,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while getopts "h:p:U:tc:a:" opt; do
    case $opt in
        h) host=$OPTARG ;;
        p) port=$OPTARG ;;
        U) unix=$OPTARG ;;
        t) tls=1 ;;
        c) tls=1; ca=$OPTARG ;;
        a) auth_file=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
# TLS is for the TCP port only: a Unix socket speaks the protocol in the clear.
[ -n "$unix" ] && [ -n "$tls" ] && { echo "dipc-nc: -U and -t/-c exclude each other" >&2; exit 2; }
token=""
if [ -n "$auth_file" ]; then
    IFS= read -r token < "$auth_file" || [ -n "$token" ] || { echo "dipc-nc: cannot read a token from $auth_file" >&2; exit 2; }
    token=${token%$'\r'}
fi
peer=${unix:-$host:$port}

# A connection to the server on stdin/stdout: nc over TCP or the Unix socket, or
# openssl s_client over TLS (it verifies the server's certificate and name or address,
# and with -quiet stays connected after stdin ends, until the server closes).
connect() {
    if [ -n "$unix" ]; then
        nc -U "$unix"
    elif [ -n "$tls" ]; then
        local verify=(-verify_hostname "$host" -servername "$host")
        [[ $host =~ ^[0-9.]+$|: ]] && verify=(-verify_ip "$host" -noservername)
        # s_client reports the certificate chain on stderr: only its errors are kept.
        openssl s_client -quiet -verify_return_error ${ca:+-CAfile "$ca"} "${verify[@]}" -connect "$host:$port" \
            2> >(grep -v -e '^depth=' -e '^verify return:' >&2)
    else
        nc "$host" "$port"
    fi
}

# Sends `a TOKEN` (with -a), stdin's bytes, then `q`; prints the raw reply (ending in `bye`).
exchange() { { [ -z "$token" ] || printf 'a %s\n' "$token"; cat; printf 'q\n'; } | connect; }

# Reads one reply from stdin (after the `ok` to `a TOKEN`, with -a): on `ok LEN VERSION`
# prints the LEN data bytes; on `ok ...` prints the rest of the line; on `err` prints it
# on stderr and fails.
reply() {
    local header
    if [ -n "$token" ]; then
        IFS= read -r header || { echo "dipc-nc: no reply from $peer" >&2; return 1; }
        header=${header%$'\r'}
        [ "$header" = ok ] || { echo "dipc-nc: $header" >&2; return 1; }
    fi
    IFS= read -r header || { echo "dipc-nc: no reply from $peer" >&2; return 1; }
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
