#!/bin/sh
# The demo, run inside the VM by /init as `sh /demo.sh` (cargo xtask demo).
#
# What it shows: real BPF LSM programs, loaded and pinned by the real node
# daemon, deny exec to a governed workload unless its capability policy or
# a signed artifact allows it; the daemon verifies the artifact (Ed25519,
# DSSE), installs a one-use kernel grant, refuses a replay, records every
# decision, and enforcement outlives the daemon until it is uninstalled.
# It prints ACELOGIC-DEMO-OK only if every step behaved as stated.

fail() {
    echo "DEMO FAILED: $*"
    exit 1
}
step() {
    echo
    echo "== $*"
}
# Starts the daemon with the demo's policies in the background, logging
# to $LOG, and waits until its API answers.
start_agent() {
    acelogic-agent --policies "$POLICIES" --audience demo >>"$LOG" 2>&1 &
    AGENT=$!
    i=0
    until acelogicctl status >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -gt 300 ] && { cat "$LOG"; fail "agent did not start"; }
        kill -0 "$AGENT" 2>/dev/null || { cat "$LOG"; fail "agent exited"; }
        sleep 0.1
    done
}
# Runs "$CMD --version" as the governed workload; sets rc.
governed_run() {
    acelogicctl run --workload ai-agent -- "$CMD" --version >/tmp/governed.out 2>&1
    rc=$?
    sed 's/^/   governed | /' /tmp/governed.out
}

# A real ELF binary (not a busybox applet, which a busybox shell may run
# without any exec) is the command the "AI agent" tries to run.
CMD=/usr/bin/acelogicctl
GOVERNED=/sys/fs/cgroup/ai-agent
POLICIES=/etc/acelogic/policies
KEYS=/root/keys
LOG=/tmp/agent.log

step "1. Is this kernel able to enforce? (acelogicctl check-node)"
acelogicctl check-node || fail "node not ready"

step "2. Keys, a trust store and a capability policy for the workload ai-agent"
mkdir -p "$POLICIES" "$KEYS"
{
    echo "apiVersion: acelogic.dev/v1"
    echo "kind: TrustStore"
    echo "keys:"
    acelogicctl keygen --name release-authority --role issuer --out "$KEYS/issuer.key" 2>/dev/null
} >"$POLICIES/trust.yaml" || fail "keygen"
cat >"$POLICIES/ai-agent.yaml" <<EOF
apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: ai-agent
spec:
  workloads:
    - name: ai-agent
      cgroups: [/ai-agent]
  baseline:
    libraries: [/lib/**, /lib64/**]
  grantable:
    - name: run-ctl
      exec: [$CMD]
      issuers: [release-authority]
      maxTtl: 15m
      maxUses: 1
  never:
    write: [/etc/**]
EOF
sed 's/^/   policy | /' "$POLICIES/ai-agent.yaml"
acelogicctl policy check "$POLICIES" | sed 's/^/   /'
acelogicctl policy check "$POLICIES" >/dev/null || fail "policy check"

step "3. Start the node daemon with these policies"
start_agent
sed 's/^/   agent | /' "$LOG"

step "4. Outside the governed cgroup, $CMD --version runs"
$CMD --version || fail "ungoverned exec failed"

step "5. As the governed workload (acelogicctl run --workload ai-agent), it is denied"
governed_run
[ "$rc" -ne 0 ] || fail "governed exec succeeded"
grep -q "not permitted" /tmp/governed.out || fail "governed exec did not fail with EPERM"
sleep 0.5
grep "hook=exec verdict=deny reason=no-grant" "$LOG" | tail -n 1 | sed 's/^/   agent | /'
grep -q "hook=exec verdict=deny reason=no-grant" "$LOG" || fail "no denial record"

step "6. The authority signs a one-use artifact; the daemon verifies it and installs the grant"
cat >/root/request.yaml <<EOF
issuer: release-authority
subject: {workload: ai-agent}
audience: demo
ttl: 10m
maxUses: 1
capabilities:
  - exec: {path: $CMD, sha256: $(sha256sum "$CMD" | cut -d' ' -f1)}
reason: the agent needs its CLI once
EOF
acelogicctl artifact sign --request /root/request.yaml --key "$KEYS/issuer.key" \
    --out /root/artifact.json || fail "sign"
acelogicctl artifact inspect /root/artifact.json --trust "$POLICIES/trust.yaml" | sed 's/^/   /'
acelogicctl artifact submit /root/artifact.json | sed 's/^/   /'
governed_run
[ "$rc" -eq 0 ] || fail "the granted exec was denied"
sleep 0.5
grep "hook=exec verdict=allow reason=grant" "$LOG" | tail -n 1 | sed 's/^/   agent | /'
grep -q "hook=exec verdict=allow reason=grant" "$LOG" || fail "no grant record"

step "7. One use only: the next run is denied, and a replay of the artifact is refused"
governed_run
[ "$rc" -ne 0 ] || fail "a used-up grant allowed a second exec"
acelogicctl artifact submit /root/artifact.json 2>&1 | sed 's/^/   /'
grep -q "refused \[replayed\]" "$LOG" || fail "the replay was not refused"
grep "refused \[replayed\]" "$LOG" | sed 's/^/   agent | /'

step "8. Stop the daemon"
kill -TERM "$AGENT"
wait "$AGENT"
tail -n 1 "$LOG" | sed 's/^/   agent | /'

step "9. With the daemon stopped, the governed command is still denied"
sh -c "echo \$\$ > $GOVERNED/cgroup.procs && $CMD --version" >/tmp/governed.out 2>&1 \
    && fail "exec allowed with the daemon stopped: enforcement did not outlive it"
grep -q "not permitted" /tmp/governed.out || fail "unexpected failure: $(cat /tmp/governed.out)"
echo "   -> denied: programs, links and maps are pinned under /sys/fs/bpf/acelogic"
ls /sys/fs/bpf/acelogic/links | tr '\n' ' ' | sed 's/^/   pinned links: /'
echo

step "10. A restarted daemon adopts the pinned programs (no window without enforcement)"
start_agent
grep "attached" "$LOG" | sed 's/^/   agent | /'
grep -q " 0 program(s) attached" "$LOG" || fail "the restarted agent attached programs again"
kill -TERM "$AGENT"
wait "$AGENT"

step "11. Uninstall: enforcement ends only when asked to"
acelogic-agent uninstall | sed 's/^/   /'
# Some kernels release the last link reference after an RCU grace period.
i=0
until sh -c "echo \$\$ > $GOVERNED/cgroup.procs && $CMD --version" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -gt 50 ] && fail "still enforced after uninstall"
    sleep 0.1
done
echo "   -> the same command runs again"

echo
echo "ACELOGIC-DEMO-OK"
