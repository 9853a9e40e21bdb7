#!/bin/sh
# The demo, run inside the VM by /init as `sh /demo.sh` (cargo xtask demo).
#
# What it shows, at this stage of ACELOGIC: a real BPF LSM program, loaded
# by the real agent, denies exec to every process of a governed cgroup
# (there are no policies or signed artifacts yet, so nothing is allowed
# there), records each denial, and leaves processes outside the cgroup
# alone. It prints ACELOGIC-DEMO-OK only if every step behaved as stated.

fail() {
    echo "DEMO FAILED: $*"
    exit 1
}
step() {
    echo
    echo "== $*"
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
acelogic-agent --govern "$GOVERNED" >"$LOG" 2>&1 &
AGENT=$!
i=0
until grep -q "enforcing exec" "$LOG" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -gt 300 ] && { cat "$LOG"; fail "agent did not start"; }
    kill -0 "$AGENT" 2>/dev/null || { cat "$LOG"; fail "agent exited"; }
    sleep 0.1
done
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

step "7. With the agent stopped, the same governed command runs again"
echo "   (enforcement that outlives the agent, pinned in bpffs, is the next step: issue 3)"
sh -c "echo \$\$ > $GOVERNED/cgroup.procs && $CMD --version" || fail "exec after stop failed"

echo
echo "ACELOGIC-DEMO-OK"
