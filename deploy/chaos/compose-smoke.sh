#!/usr/bin/env bash
# Container smoke test: deploy/README.md's walk-through works from the host against the
# real 3-node compose cluster, which survives SIGKILL of its metadata leader and takes
# the killed node back.
#
#   deploy/chaos/compose-smoke.sh [BIN_DIR]
#
# Goal: the deploy artefacts (image, compose file) give a cluster that a client on the
# host can use (it follows the addresses the nodes advertise), that elects a metadata
# leader, re-elects one when the leader is SIGKILLed, and takes the restarted node back.
# Method: build the image (deploy/docker/build-image.sh BIN_DIR), `docker-compose up` the
# cluster under a project name of its own (evlog-smoke-<pid>, free host ports picked
# here); read
# each node's log for openraft's vote lines ("vote is changing from A to T<term>-N<id>:
# committed", "become leader id=N"), `docker kill` the leader, wait for the two survivors
# to agree on a leader of a higher term, `docker start` the killed node and wait until it
# logs that committed vote too and the leader stops logging replication errors to it.
# Then the walk-through with the host's `evlog` CLI: cluster status shows every node up,
# topic create, produce, consume the events back, describe.
# Every wait is bounded; the whole run is bounded by SMOKE_TIMEOUT_S; the project
# (containers, network, volumes) is removed on any exit. Only this run's containers are
# touched. The walk-through runs last: before it the cluster has no topics, so every vote
# line the election checks read is the metadata group's.
#
# Env: SKIP_BUILD=1 (reuse the image), IMAGE (default evlog:dev), SMOKE_TIMEOUT_S (300),
# KEEP_LOGS=DIR (save every node's log there before teardown).
set -euo pipefail

readonly BIN_DIR="${1:-$HOME/.cache/evlog/target/release}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO
readonly COMPOSE_FILE="$REPO/deploy/compose/docker-compose.yml"
export IMAGE="${IMAGE:-evlog:dev}"
readonly SMOKE_TIMEOUT_S="${SMOKE_TIMEOUT_S:-300}"
readonly PROJECT="evlog-smoke-$$"
readonly ELECTION_WAIT_S=60 REJOIN_WAIT_S=60 QUIET_S=3
readonly EVLOG_CLI="$BIN_DIR/evlog"

# Three client ports free on 127.0.0.1 now: the nodes advertise them, so they are fixed
# before the cluster starts (not left to docker to choose).
read -r PORT1 PORT2 PORT3 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
readonly PORT1 PORT2 PORT3
export EVLOG_BOOTSTRAP="127.0.0.1:$PORT1,127.0.0.1:$PORT2,127.0.0.1:$PORT3"

log() { printf '%s smoke: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

compose() {
    NODE_IMAGE="$IMAGE" NODE1_PORT="$PORT1" NODE2_PORT="$PORT2" NODE3_PORT="$PORT3" \
        docker-compose --ansi never -p "$PROJECT" -f "$COMPOSE_FILE" "$@"
}

watchdog_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e  # clean up as much as possible, whatever fails
    if [[ -n "$watchdog_pid" ]]; then kill "$watchdog_pid" 2>/dev/null; fi
    if [[ $status -ne 0 ]]; then
        log "exit status $status; last log lines of every node:"
        compose logs --no-color --tail=25 >&2 2>&1 || true
    fi
    if [[ -n "${KEEP_LOGS:-}" ]]; then
        if mkdir -p "$KEEP_LOGS"; then
            compose logs --no-color >"$KEEP_LOGS/$PROJECT.log" 2>&1 || true
        fi
    fi
    log "tearing down project $PROJECT"
    compose down --volumes --remove-orphans --timeout 15 >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The whole run is bounded: the watchdog SIGTERMs this script, whose trap cleans up.
# Its sleep gets no copy of our stdout/stderr and is killed with it: nothing outlives us.
(
    trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
    sleep "$SMOKE_TIMEOUT_S" >/dev/null 2>&1 &
    sleep_pid=$!
    wait "$sleep_pid" || exit 0
    log "FAIL: over SMOKE_TIMEOUT_S=${SMOKE_TIMEOUT_S}s"
    kill -TERM $$
) &
watchdog_pid=$!

container() { compose ps -q "node$1"; }

# node_log ID [SINCE]: the node's whole container log (both runs after a restart), or
# the part after SINCE (unix time).
node_log() {
    local cid; cid="$(container "$1")"
    if [[ -n "${2:-}" ]]; then docker logs --since "$2" "$cid" 2>&1; else docker logs "$cid" 2>&1; fi
}

# last_vote ID [SINCE]: the node's current vote, e.g. T2-N3:committed, from its last
# "vote is changing from A to B" line (empty if none).
last_vote() {
    node_log "$@" | sed -n 's/.*vote is changing from [^ ]* to \(T[0-9]*-N[0-9]*:[a-z]*\).*/\1/p' | tail -n 1
}

is_running() { [[ "$(docker inspect -f '{{.State.Running}}' "$(container "$1")")" == true ]]; }

# agreed_leader "ID[@SINCE] ...": prints the committed vote T<term>-N<id> all the given
# nodes agree on, if its leader is one of them and logged "become leader" last; else
# fails.
agreed_leader() {
    local spec id since vote first="" leader
    for spec in "$@"; do
        id="${spec%%@*}"; since=""; [[ "$spec" == *@* ]] && since="${spec#*@}"
        is_running "$id" || return 1
        vote="$(last_vote "$id" "$since")"
        [[ "$vote" == *:committed ]] || return 1
        [[ -z "$first" ]] && first="$vote"
        [[ "$vote" == "$first" ]] || return 1
    done
    leader="${first#*-N}"; leader="${leader%%:*}"
    [[ " $* " == *" $leader "* || " $* " == *" $leader@"* ]] || return 1
    [[ "$(node_log "$leader" | grep -o '\(become\|quit\) leader id=[0-9]*' | tail -n 1)" \
        == "become leader id=$leader" ]] || return 1
    echo "${first%:committed}"
}

# wait_leader SECONDS NODE_SPEC...: waits for agreed_leader, prints T<term>-N<id>.
wait_leader() {
    local limit_s="$1" deadline vote; shift
    deadline=$((SECONDS + limit_s))
    while ((SECONDS < deadline)); do
        if vote="$(agreed_leader "$@")"; then echo "$vote"; return 0; fi
        sleep 1
    done
    return 1
}

term_of() { local t="${1#T}"; echo "${t%%-*}"; }
leader_of() { echo "${1#*-N}"; }

# --- 1. image -------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    docker image inspect "$IMAGE" >/dev/null || fail "SKIP_BUILD=1 but no image $IMAGE"
else
    log "building $IMAGE from $BIN_DIR"
    "$REPO/deploy/docker/build-image.sh" "$BIN_DIR" >/dev/null
fi

# --- 2. cluster -----------------------------------------------------------------------
log "starting project $PROJECT"
up_out="$(compose up -d 2>&1)" || fail "docker-compose up failed: $(tail -n 5 <<<"$up_out")"
for id in 1 2 3; do
    log "node$id: container $(container "$id" | cut -c1-12)"
done
log "clients on the host: EVLOG_BOOTSTRAP=$EVLOG_BOOTSTRAP"

vote="$(wait_leader "$ELECTION_WAIT_S" 1 2 3)" || fail "no metadata leader agreed by all 3 nodes within ${ELECTION_WAIT_S}s"
leader="$(leader_of "$vote")"; term="$(term_of "$vote")"
log "metadata leader: node$leader (term $term, vote $vote)"
for id in 1 2 3; do
    # grep reads the whole log (no -q): with pipefail, an early exit would SIGPIPE docker.
    node_log "$id" | grep "node started node_id=$id" >/dev/null || fail "node$id never logged 'node started'"
    is_running "$id" || fail "node$id is not running"
done

# --- 3. SIGKILL the leader --------------------------------------------------------------
victim="$leader"
survivors=(); for id in 1 2 3; do [[ "$id" != "$victim" ]] && survivors+=("$id"); done
log "docker kill node$victim (the leader)"
docker kill "$(container "$victim")" >/dev/null
sleep 1
is_running "$victim" && fail "node$victim still running after docker kill (restart policy restarted it?)"

vote2="$(wait_leader "$ELECTION_WAIT_S" "${survivors[@]}")" \
    || fail "survivors ${survivors[*]} agreed on no new leader within ${ELECTION_WAIT_S}s"
(( $(term_of "$vote2") > term )) || fail "survivors' leader $vote2 is not of a term above $term"
log "new metadata leader among survivors: node$(leader_of "$vote2") (vote $vote2)"

# --- 4. restart the killed node, check it rejoins -------------------------------------
restart_at="$(date +%s)"
log "docker start node$victim"
docker start "$(container "$victim")" >/dev/null
deadline=$((SECONDS + REJOIN_WAIT_S))
until node_log "$victim" "$restart_at" | grep "node started node_id=$victim" >/dev/null; do
    ((SECONDS < deadline)) || fail "node$victim did not log 'node started' after restart"
    sleep 1
done
vote3="$(wait_leader "$REJOIN_WAIT_S" "${survivors[@]}" "$victim@$restart_at")" \
    || fail "node$victim did not take the cluster's committed vote within ${REJOIN_WAIT_S}s of its restart (its last vote: $(last_vote "$victim" "$restart_at"))"
new_leader="$(leader_of "$vote3")"
log "node$victim rejoined: all 3 nodes agree on $vote3"

# The leader logs "error replication to target=N" every ~500 ms while N is unreachable.
sleep "$QUIET_S"
quiet_since="$(( $(date +%s) - QUIET_S ))"
if node_log "$new_leader" "$quiet_since" | grep "replication to target=$victim" >/dev/null; then
    fail "leader node$new_leader still fails to replicate to node$victim"
fi
for id in 1 2 3; do is_running "$id" || fail "node$id is not running at the end"; done
# --- 5. the walk-through, from the host, on the healed cluster ---------------------
[[ -x "$EVLOG_CLI" ]] || fail "no evlog CLI at $EVLOG_CLI"
status="$("$EVLOG_CLI" cluster status 2>&1)" || fail "evlog cluster status failed: $status"
grep -q "nodes answering: 3/3" <<<"$status" || fail "not every node answers from the host: $status"
if grep -q "unreachable" <<<"$status"; then fail "a node is unreachable from the host: $status"; fi
out="$("$EVLOG_CLI" topic create walkthrough --partitions 3 --replication-factor 3 2>&1)" \
    || fail "evlog topic create failed: $out"
printf 'one\ntwo\nthree\nfour\nfive\nsix\n' | "$EVLOG_CLI" produce walkthrough >/dev/null 2>&1 \
    || fail "evlog produce failed"
consumed="$("$EVLOG_CLI" consume walkthrough --from earliest --count 6 2>&1)" \
    || fail "evlog consume failed: $consumed"
for word in one two three four five six; do
    grep -qw "$word" <<<"$consumed" || fail "consumed events lack $word: $consumed"
done
described="$("$EVLOG_CLI" topic describe walkthrough 2>&1)" || fail "describe failed: $described"
log "walk-through from the host: ok (6 events produced and consumed back)"

log "PASS: leader $vote -> killed node$victim -> leader $vote2 -> node$victim rejoined ($vote3) in ${SECONDS}s"
