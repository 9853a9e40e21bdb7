#!/bin/sh
# The demo, run inside the VM as `sh /demo/demo.sh` (cargo xtask demo).
#
# Two AI agents disagree about one deployment, a third deploys to
# production once a human approves, its node fails and a replacement on a
# second node tries to deploy again, and one of the agents tries to break
# out. Everything is real: the node daemon loads BPF LSM programs into
# this kernel, the agents are processes in governed cgroups running real
# commands, they ask the authority for artifacts through their daemon,
# artifacts are Ed25519-signed by the authority and the approver and
# verified by the daemon, and every decision is journaled, shipped to the
# collector and read back from it.
#
# Each action prints what the agent ran, what it saw, and the decision the
# kernel recorded with its reason code. The script stops with
# "DEMO FAILED: ..." and exit 1 at the first step that does not behave as
# stated; it prints ACELOGIC-DEMO-OK only if every step did.

POLICIES=/etc/acelogic/policies
KEYS=/root/keys
WORK=/tmp/demo
DLOG=$WORK/daemon.log
CLOG=$WORK/collector.log
COLLECTOR=http://127.0.0.1:7400
# The authority the daemons relay the agents' requests to.
AUTHORITY=http://127.0.0.1:7500
ALOG=$WORK/authority.log
NODE=demo-node
# The cluster store both nodes share, and the second node (its own
# daemon, pinned programs, state, socket and cgroup tree in this VM).
ETCD=http://127.0.0.1:2379
NODE_B=node-b
SOCK_B=/run/acelogic/node-b.sock
DLOG_A=$WORK/daemon.log
DLOG_B=$WORK/daemon-b.log
# The stand-in commands live in /usr/local/bin, as kubectl would.
export PATH=/usr/local/bin:$PATH

fail() {
    echo "DEMO FAILED: $*"
    exit 1
}
step() {
    echo
    echo "== $*"
}
say() {
    echo "   $*"
}
# Waits up to $2 tenths of a second for the command $1 to succeed.
await() {
    i=0
    until eval "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -gt "$2" ] && return 1
        sleep 0.1
    done
}

# The daemon's log lines after the current mark (see `mark`).
since_mark() {
    tail -n +"$((DMARK + 1))" "$DLOG"
}
mark() {
    DMARK=$(wc -l <"$DLOG")
}

# start_agent NAME WORKLOAD [SOCKET]: starts the agent NAME as
# `acelogicctl run --workload WORKLOAD` (a new cgroup below the
# workload's, governed from the first instruction) on the node whose
# daemon listens on SOCKET (default: node A's) and sets $PID_<NAME>.
start_agent() {
    mkfifo "$WORK/$1.inbox" "$WORK/$1.out"
    : >"$WORK/$1.log"
    # Output through a pipe that an ungoverned reader copies to the log: a
    # governed process may not write a file outside its writable set, not
    # even through a descriptor its parent opened (`>> log` is refused).
    cat "$WORK/$1.out" >>"$WORK/$1.log" &
    acelogicctl --socket "${3:-/run/acelogic/agent.sock}" run --workload "$2" -- \
        /bin/sh /demo/agent.sh "$1" "$WORK/$1.inbox" >"$WORK/$1.out" 2>&1 &
    pid=$!
    await "grep -q '^@@ready' $WORK/$1.log" 300 || {
        cat "$WORK/$1.log"
        fail "agent $1 did not start"
    }
    eval "PID_$1=$pid"
    say "agent $1 (pid $pid) runs in $(cut -d: -f3 /proc/$pid/cgroup), workload $2"
}

# tell AGENT COMMAND: hands the agent one command and returns at once
# (`answer AGENT` waits for it).
tell() {
    agent=$1
    shift
    eval "apid=\$PID_$agent"
    kill -0 "$apid" 2>/dev/null || fail "agent $agent (pid $apid) is gone"
    log=$WORK/$agent.log
    from=$(wc -l <"$log")
    done_before=$(grep -c '^@@done' "$log")
    mark
    say "$agent \$ $*"
    echo "$*" >"$WORK/$agent.inbox"
}
# answer AGENT: waits for the command last told to finish, prints its
# output and sets $rc to its exit status.
answer() {
    log=$WORK/$1.log
    await "[ \$(grep -c '^@@done' $log) -gt $done_before ]" 1200 || fail "agent $1 did not answer"
    tail -n +"$((from + 1))" "$log" | grep -v '^@@' | sed "s/^/   $1 | /"
    rc=$(grep '^@@done' "$log" | tail -n 1 | cut -d' ' -f3)
}
# ask AGENT COMMAND: tell, then answer.
ask() {
    tell "$@"
    answer "$1"
}

# decision HOOK VERDICT REASON: the daemon journaled this kernel decision
# for the last action; prints it.
decision() {
    want="decision hook=$1 verdict=$2 reason=$3"
    if ! await "since_mark | grep -q '$want'" 100; then
        since_mark | grep decision | sed 's/^/   recorded | /'
        fail "expected the kernel decision [$2 $1 $3] for that action"
    fi
    since_mark | grep -m 1 "$want" | sed 's/ uid=.*//; s/^/   kernel   | /'
    echo "   => $(echo "$2" | tr a-z A-Z) [$3]"
}

# authz OUTCOME REASON: the daemon recorded this authorization outcome for
# the last action; prints it.
authz() {
    want="authz #[0-9]* $1 \[$2\]"
    if ! await "since_mark | grep -q '$want'" 100; then
        since_mark | grep authz | sed 's/^/   recorded | /'
        fail "expected the authorization record [$1 $2] for that action"
    fi
    since_mark | grep -m 1 "$want" | sed 's/: .*//; s/^/   daemon   | /'
    echo "   => $(echo "$1" | tr a-z A-Z) [$2]"
}

expect_denied() {
    [ "$rc" -ne 0 ] || fail "the action succeeded; it should have been denied"
}
expect_ok() {
    [ "$rc" -eq 0 ] || fail "the action failed (exit $rc); it should have been allowed"
}
expect_file() {
    got=$(cat "$1")
    [ "$got" = "$2" ] || fail "$1 holds '$got', expected '$2'"
    say "$1: $got"
}

# issued AGENT: the artifact id the agent's last request printed.
issued() {
    tail -n +"$((from + 1))" "$WORK/$1.log" | sed -n 's/.*issued artifact \([0-9a-f]*\).*/\1/p' | head -n 1
}
# pending: the id of the one request waiting in the authority's queue.
pending() {
    acelogicctl approvals --authority "$AUTHORITY" list --json | tr -d ' \n' |
        sed -n 's/.*"requestId":"\([0-9a-f]*\)".*/\1/p'
}
# lineage_seq FIELD [SOCKET]: headSeq or ackedSeq of a node's journal,
# from status.
lineage_seq() {
    acelogicctl --socket "${2:-/run/acelogic/agent.sock}" status --json | tr -d ' \n' |
        sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
# start_node_a: node A's daemon (its log appends to $DLOG_A).
start_node_a() {
    acelogic-agent --policies "$POLICIES" --audience demo --node-name "$NODE" \
        --collector "$COLLECTOR" --etcd-endpoints "$ETCD" --authority "$AUTHORITY" \
        >>"$DLOG_A" 2>&1 &
    DAEMON=$!
    await "acelogicctl status" 600 || {
        cat "$DLOG_A"
        fail "the node daemon did not start"
    }
}

mkdir -p "$WORK" "$POLICIES" "$KEYS"

step "0. The node: a BPF-LSM kernel, the lineage collector, the node daemon and its policies"
acelogic-agent check-node | sed 's/^/   /'
acelogic-agent check-node >/dev/null || fail "this kernel cannot enforce"
{
    echo "apiVersion: acelogic.dev/v1"
    echo "kind: TrustStore"
    echo "keys:"
    acelogicctl keygen --name release-authority --role issuer --out "$KEYS/issuer.key" 2>/dev/null
    acelogicctl keygen --name change-approver --role approver --out "$KEYS/approver.key" 2>/dev/null
} >"$POLICIES/trust.yaml" || fail "keygen"
cp /demo/policies/*.yaml "$POLICIES/"
acelogicctl policy check "$POLICIES" | sed 's/^/   /'
acelogicctl policy check "$POLICIES" >/dev/null || fail "the policies do not check"
# The "cluster" the agents change: one replica count, one production image.
mkdir -p /srv/cluster/replicas /srv/cluster/production/checkout /srv/cluster/staging \
    /srv/agents/scaling /srv/agents/deploy
echo 3 >/srv/cluster/replicas/checkout
printf 'release 1.8.0: image shop/checkout:1.8.0, canary passed 30 min\n' >/srv/agents/deploy/plan.txt
echo shop/checkout:1.7.2 >/srv/cluster/production/checkout/image
say "cluster: checkout runs 3 replicas of shop/checkout:1.7.2"

acelogic-collector --listen 127.0.0.1:7400 --db /var/lib/acelogic-collector/lineage.db \
    --key /var/lib/acelogic-collector/collector.key --accept-new-nodes \
    --checkpoint-interval 1s >"$CLOG" 2>&1 &
await "grep -q 'listening on' $CLOG" 300 || {
    cat "$CLOG"
    fail "the collector did not start"
}
sed 's/^/   collector | /' "$CLOG"
etcd --name demo --data-dir /var/lib/etcd-demo --listen-client-urls "$ETCD" \
    --advertise-client-urls "$ETCD" --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster demo=http://127.0.0.1:2380 >"$WORK/etcd.log" 2>&1 &
await "wget -q -O - $ETCD/health | grep -q true" 600 || {
    cat "$WORK/etcd.log"
    fail "etcd did not start"
}
say "cluster store: etcd $(etcd --version | head -n 1 | cut -d' ' -f3) on $ETCD"
# Each node's key signs its lineage and the requests it relays; the
# authority knows them from its enrollment file.
mkdir -p /var/lib/acelogic /var/lib/acelogic-node-b
{
    echo "apiVersion: acelogic.dev/v1"
    echo "kind: NodeEnrollment"
    echo "nodes:"
    acelogicctl keygen --role node --name "$NODE" --out /var/lib/acelogic/node.key 2>/dev/null
    acelogicctl keygen --role node --name "$NODE_B" --out /var/lib/acelogic-node-b/node.key 2>/dev/null
} >"$WORK/nodes.yaml" || fail "keygen --role node"
acelogic-authority --listen 127.0.0.1:7500 --state-dir /var/lib/acelogic-authority \
    --issuer-key "$KEYS/issuer.key" --issuing-policy "$POLICIES/issuing.yaml" \
    --policies "$POLICIES" --trust "$POLICIES/trust.yaml" --nodes "$WORK/nodes.yaml" \
    --collector "$COLLECTOR" >"$ALOG" 2>&1 &
await "grep -q 'listening on' $ALOG" 300 || {
    cat "$ALOG"
    fail "the authority did not start"
}
say "authority: issues as release-authority on $AUTHORITY; tiers from $POLICIES/issuing.yaml"
: >"$DLOG_A"
start_node_a
grep 'acelogic-agent:' "$DLOG" | sed 's/^/   daemon | /'

step "1. Two agents disagree about checkout; without artifacts, neither may scale it"
start_agent autoscaler autoscaler
start_agent costagent cost-agent
say "autoscaler: CPU at 92% for 10 minutes -> scale checkout to 6"
ask autoscaler scale checkout 6
expect_denied
decision exec deny no-grant
say "cost agent: spend 40% over budget -> scale checkout to 2"
ask costagent scale checkout 2
expect_denied
decision exec deny no-grant
expect_file /srv/cluster/replicas/checkout 3

step "2. Both ask the authority through their node: scaling is routine (issued at once), but one operation key has one holder"
SCALE="--exec /usr/local/bin/scale --write /srv/cluster/replicas/checkout --operation-key scale/checkout"
ask autoscaler acelogicctl request $SCALE --reason "'CPU 92%: checkout 3 -> 6'" --wait
expect_ok
grep -q "auto tier" "$WORK/autoscaler.log" || fail "the autoscaler's request was not issued at once"
authz accepted granted
ask costagent acelogicctl request $SCALE --reason "'cost: checkout 3 -> 2'" --wait
expect_denied
authz refused operation-conflict
ask autoscaler scale checkout 6
expect_ok
decision exec allow grant
expect_file /srv/cluster/replicas/checkout 6
ask costagent scale checkout 2
expect_denied
decision exec deny no-grant
expect_file /srv/cluster/replicas/checkout 6

step "3. A production deploy waits for a human; what is never automated is refused at once"
start_agent deployer deploy-agent
DEPLOY="--exec /usr/local/bin/kubectl --write /srv/cluster/production/checkout/image --operation-key deploy/production/checkout"
tell deployer acelogicctl request $DEPLOY --reason "'release 1.8.0 to production'" \
    --evidence /srv/agents/deploy/plan.txt --out /srv/agents/deploy/deploy.json --wait
await '[ -n "$(pending)" ]' 300 || fail "the deploy request is not in the approval queue"
REQ=$(pending)
say "the request waits in the authority's queue; the change approver looks at it:"
say "\$ acelogicctl approvals list"
acelogicctl approvals --authority "$AUTHORITY" list | sed 's/^/   /'
say "\$ acelogicctl approvals show $REQ --collector $COLLECTOR"
acelogicctl approvals --authority "$AUTHORITY" show "$REQ" --collector "$COLLECTOR" >"$WORK/show.txt" ||
    fail "approvals show"
sed 's/^/   /' "$WORK/show.txt"
grep -q "evidence: plan.txt sha256:" "$WORK/show.txt" || fail "the approver does not see the evidence"
say "\$ acelogicctl approvals approve $REQ --key approver.key   # signs the payload here, with the approver's own key"
acelogicctl approvals --authority "$AUTHORITY" approve "$REQ" --key "$KEYS/approver.key" | sed 's/^/   /'
answer deployer
expect_ok
grep -q "approved by change-approver" "$WORK/deployer.log" || fail "the deploy was not approved by change-approver"
DEPLOY_ID=$(issued deployer)
[ -n "$DEPLOY_ID" ] || fail "no artifact id in the deploy agent's output"
authz accepted granted
say "the deploy agent reads its fencing token (the API it deploys through could refuse a stale one):"
ask deployer acelogicctl operations show deploy/production/checkout
expect_ok
grep -q "deploy/production/checkout held by artifact $DEPLOY_ID on node $NODE" "$WORK/deployer.log" ||
    fail "the deploy agent does not see itself holding deploy/production/checkout"
ask deployer kubectl -n production set image deployment/checkout shop/checkout:1.8.0
expect_ok
decision exec allow grant
expect_file /srv/cluster/production/checkout/image shop/checkout:1.8.0
say "the deploy agent asks for nsenter, which the issuing policy never automates:"
ask deployer acelogicctl request --exec /usr/bin/nsenter --reason "'debug the node'" --wait
expect_denied
grep -q "\[never-automated\]" "$WORK/deployer.log" || fail "nsenter was not refused as never-automated"
[ -z "$(pending)" ] || fail "the nsenter request reached the approval queue"
say "=> REFUSED [never-automated]: nobody was asked"

step "4. Node $NODE fails after the deploy; a replacement deploy agent on $NODE_B tries to deploy again"
await "grep -q 'authz #[0-9]* consumed \[consumed\] artifact=$DEPLOY_ID' $DLOG" 100 || {
    acelogicctl grants
    grep authz "$DLOG"
    fail "the daemon did not retire the used-up artifact $DEPLOY_ID"
}
grep "authz #[0-9]* consumed \[consumed\] artifact=$DEPLOY_ID" "$DLOG" | sed 's/: .*//; s/^/   daemon   | /'
await "acelogicctl operations show deploy/production/checkout | grep -q completed" 100 ||
    fail "the cluster store does not record deploy/production/checkout as completed"
say "\$ acelogicctl operations show deploy/production/checkout"
acelogicctl operations show deploy/production/checkout | sed 's/^/   /'
# Node B's policies are node A's with its own cgroups (one VM stands in
# for two machines: each daemon must govern cgroups of its own).
mkdir -p "$POLICIES-b"
cp "$POLICIES/trust.yaml" "$POLICIES-b/"
for f in /demo/policies/*.yaml; do
    sed 's|cgroups: \[/acelogic/|cgroups: [/node-b/acelogic/|' "$f" >"$POLICIES-b/$(basename "$f")"
done
acelogic-agent --policies "$POLICIES-b" --audience demo --node-name "$NODE_B" \
    --pin-dir /sys/fs/bpf/acelogic-node-b --state-dir /var/lib/acelogic-node-b \
    --socket "$SOCK_B" --collector "$COLLECTOR" --etcd-endpoints "$ETCD" \
    --authority "$AUTHORITY" >"$DLOG_B" 2>&1 &
DAEMON_B=$!
await "acelogicctl --socket $SOCK_B status" 600 || {
    cat "$DLOG_B"
    fail "node B's daemon did not start"
}
say "node $NODE_B: its own daemon (pid $DAEMON_B), programs, state and cgroups; the same etcd"
kill -9 "$PID_deployer" "$DAEMON"
wait "$PID_deployer" "$DAEMON" 2>/dev/null
say "node $NODE fails: its daemon (pid $DAEMON) and the deploy agent (pid $PID_deployer) are killed"
DLOG=$DLOG_B
start_agent replacement deploy-agent "$SOCK_B"
ask replacement kubectl -n production set image deployment/checkout shop/checkout:1.8.1
expect_denied
decision exec deny no-grant
say "the replacement asks for the same operation again; the approver, not knowing, approves:"
tell replacement acelogicctl --socket "$SOCK_B" request $DEPLOY \
    --reason "'the deploy agent restarted: release 1.8.1'" --wait
await '[ -n "$(pending)" ]' 300 || fail "the replacement's request is not in the approval queue"
acelogicctl approvals --authority "$AUTHORITY" approve "$(pending)" --key "$KEYS/approver.key" |
    sed 's/^/   /'
answer replacement
expect_denied
authz refused operation-completed
grep -q "on node $NODE" "$WORK/replacement.log" || fail "the refusal does not name node $NODE"
say "and presents the first deploy's artifact, which the authority pinned to node $NODE:"
ask replacement acelogicctl --socket "$SOCK_B" artifact submit /srv/agents/deploy/deploy.json
expect_denied
authz refused wrong-node
expect_file /srv/cluster/production/checkout/image shop/checkout:1.8.0
say "node $NODE comes back; a deploy agent there presents the used artifact again:"
DLOG=$DLOG_A
start_node_a
start_agent redeployer deploy-agent
ask redeployer acelogicctl artifact submit /srv/agents/deploy/deploy.json
expect_denied
authz refused replayed
expect_file /srv/cluster/production/checkout/image shop/checkout:1.8.0

step "5. A governed agent tries to escape"
say "kill the node daemon (pid $DAEMON):"
ask autoscaler kill -9 "$DAEMON"
expect_denied
decision kill deny outside-scope
kill -0 "$DAEMON" || fail "the daemon died"
say "move itself out of its cgroup:"
ask autoscaler 'echo $$ >/sys/fs/cgroup/cgroup.procs'
expect_denied
decision file-open deny no-grant
say "still in $(cut -d: -f3 /proc/$PID_autoscaler/cgroup)"
say "freeze its rival through the daemon's API:"
ask autoscaler acelogicctl freeze cost-agent
expect_denied
authz refused governed-caller
say "ask the authority in its rival's name:"
ask autoscaler acelogicctl request --workload cost-agent $SCALE --reason "'as the cost agent'"
expect_denied
authz refused identity-mismatch

step "6. The collector's lineage of the session, and its verification"
await "acelogicctl status --json | tr -d ' \n' | grep -q '\"connected\":true'" 300 ||
    fail "the daemon is not connected to the collector"
head=$(lineage_seq headSeq)
[ -n "$head" ] || fail "acelogicctl status shows no journal"
await '[ "$(lineage_seq ackedSeq)" -ge "$head" ]' 300 ||
    fail "the collector did not acknowledge the journal up to seq $head"
head_b=$(lineage_seq headSeq "$SOCK_B")
await '[ "$(lineage_seq ackedSeq "$SOCK_B")" -ge "$head_b" ]' 300 ||
    fail "the collector did not acknowledge node $NODE_B's journal up to seq $head_b"
say "the collector holds node $NODE's journal up to seq $head and node $NODE_B's up to seq $head_b"
echo
say "\$ acelogicctl lineage tree \$(acelogicctl lineage exec-id $PID_autoscaler)   # the autoscaler's session"
ID=$(acelogicctl lineage exec-id "$PID_autoscaler") || fail "exec-id"
acelogicctl lineage tree "$ID" --collector "$COLLECTOR" >"$WORK/tree.txt" || fail "lineage tree"
sed 's/^/   /' "$WORK/tree.txt"
grep -qi 'exec .*scale.*deny.*no-grant' "$WORK/tree.txt" || fail "the tree lacks the denied scale"
grep -qi 'exec .*scale.*allow.*grant' "$WORK/tree.txt" || fail "the tree lacks the granted scale"
grep -qi 'kill .*deny' "$WORK/tree.txt" || fail "the tree lacks the kill attempt"
echo
say "\$ acelogicctl lineage artifact $DEPLOY_ID   # the production deploy's artifact"
acelogicctl lineage artifact "$DEPLOY_ID" --collector "$COLLECTOR" >"$WORK/artifact.txt" ||
    fail "lineage artifact"
sed 's/^/   /' "$WORK/artifact.txt"
for want in REQUESTED "evidence plan.txt" QUEUED "APPROVED by change-approver" ISSUED DELIVERED \
    "accepted (granted)" "kubectl.*allow (grant)" consumed replayed wrong-node "\[$NODE seq" \
    "\[$NODE_B seq" "\[authority seq"; do
    grep -q "$want" "$WORK/artifact.txt" || fail "the artifact's lineage lacks $want"
done
echo
say "\$ acelogicctl lineage verify --node $NODE"
acelogicctl lineage verify --node "$NODE" --collector "$COLLECTOR" | sed 's/^/   /'
acelogicctl lineage verify --node "$NODE" --collector "$COLLECTOR" >/dev/null ||
    fail "lineage verify"
say "\$ acelogicctl lineage verify --node authority   # the authority's own chain"
acelogicctl lineage verify --node authority --collector "$COLLECTOR" | sed 's/^/   /'
acelogicctl lineage verify --node authority --collector "$COLLECTOR" >/dev/null ||
    fail "lineage verify --node authority"
echo
say "\$ acelogicctl lineage head > node.head   # on the node: the newest head the collector acknowledged, signed by the node key"
acelogicctl lineage head >"$WORK/node.head" || fail "lineage head"
sed 's/^/   /' "$WORK/node.head"
say "\$ acelogicctl lineage verify --node $NODE --anchors node.head   # the store still holds it"
acelogicctl lineage verify --node "$NODE" --collector "$COLLECTOR" --anchors "$WORK/node.head" |
    sed 's/^/   /'
acelogicctl lineage verify --node "$NODE" --collector "$COLLECTOR" --anchors "$WORK/node.head" \
    >/dev/null || fail "lineage verify --anchors"

step "7. Fail closed: with the node daemon stopped, the agents are still governed"
kill -TERM "$DAEMON"
wait "$DAEMON"
tail -n 1 "$DLOG" | sed 's/^/   daemon | /'
ask autoscaler scale checkout 7
expect_denied
say "=> DENIED: the programs stay pinned in the kernel; the record waits in the ring buffer"
expect_file /srv/cluster/replicas/checkout 6

kill -9 "$PID_autoscaler" "$PID_costagent" "$PID_replacement" "$PID_redeployer" "$DAEMON_B" 2>/dev/null
echo
echo "ACELOGIC-DEMO-OK"
