#!/bin/sh
# The demo, run inside the VM by /init as `sh /demo.sh` (cargo xtask demo).
#
# What it shows, at this stage of ACELOGIC: real BPF LSM programs, loaded
# and pinned by the real agent, deny exec to every process of a governed
# cgroup (no policies or signed artifacts yet, so the baseline is empty),
# record each denial, leave processes outside the cgroup alone, and keep
# enforcing after the agent stops until it is uninstalled. It prints
# ACELOGIC-DEMO-OK only if every step behaved as stated.

fail() {
    echo "DEMO FAILED: $*"
    exit 1
}
step() {
    echo
    echo "== $*"
}
# Starts the agent on $GOVERNED in the background, logging to $LOG, and
# waits until it enforces.
start_agent() {
    acelogic-agent --govern "$GOVERNED" >"$LOG" 2>&1 &
    AGENT=$!
    i=0
    until grep -q "enforcing on" "$LOG" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -gt 300 ] && { cat "$LOG"; fail "agent did not start"; }
        kill -0 "$AGENT" 2>/dev/null || { cat "$LOG"; fail "agent exited"; }
        sleep 0.1
    done
}

# A real ELF binary (not a busybox applet, which a busybox shell may run
# without any exec) is the command the "AI agent" tries to run.
CMD=/usr/bin/acelogicctl
GOVERNED=/sys/fs/cgroup/ai-agent
LOG=/tmp/agent.log

step "1. Is this kernel able to enforce? (acelogicctl check-node)"
acelogicctl check-node || fail "node not ready"

step "2. Start the node agent, governing the cgroup $GOVERNED"
mkdir -p "$GOVERNED"
start_agent
sed 's/^/   agent | /' "$LOG"

step "3. A shell outside the governed cgroup runs $CMD --version"
$CMD --version || fail "ungoverned exec failed"
echo "   -> allowed: this process is not governed"

step "4. A shell inside the governed cgroup (the AI agent) runs the same command"
sh -c "echo \$\$ > $GOVERNED/cgroup.procs && $CMD --version" >/tmp/governed.out 2>&1
rc=$?
sed 's/^/   governed shell | /' /tmp/governed.out
[ "$rc" -ne 0 ] || fail "governed exec succeeded"
grep -q "not permitted" /tmp/governed.out || fail "governed exec did not fail with EPERM"
echo "   -> denied by the kernel with EPERM (exit $rc)"

step "5. The lineage record of that denial, as the agent received it"
sleep 0.5
grep "decision" "$LOG" | sed 's/^/   agent | /'
grep -q "decision hook=exec verdict=deny reason=no-grant" "$LOG" || fail "no denial record"

step "6. Stop the agent"
kill -TERM "$AGENT"
wait "$AGENT"
tail -n 1 "$LOG" | sed 's/^/   agent | /'

step "7. With the agent stopped, the governed command is still denied"
sh -c "echo \$\$ > $GOVERNED/cgroup.procs && $CMD --version" >/tmp/governed.out 2>&1 \
    && fail "exec allowed with the agent stopped: enforcement did not outlive it"
grep -q "not permitted" /tmp/governed.out || fail "unexpected failure: $(cat /tmp/governed.out)"
echo "   -> denied: programs, links and maps are pinned under /sys/fs/bpf/acelogic"
ls /sys/fs/bpf/acelogic/links | tr '\n' ' ' | sed 's/^/   pinned links: /'
echo

step "8. A restarted agent adopts the pinned programs (no window without enforcement)"
start_agent
grep "attached" "$LOG" | sed 's/^/   agent | /'
grep -q " 0 program(s) attached" "$LOG" || fail "the restarted agent attached programs again"
kill -TERM "$AGENT"
wait "$AGENT"

step "9. Uninstall: enforcement ends only when asked to"
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
