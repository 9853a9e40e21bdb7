#!/bin/sh
# agent.sh NAME INBOX: an "AI agent" stand-in. A long-lived process in a
# governed cgroup that carries out one intention at a time with real
# commands: what a model would decide to run arrives as a line on INBOX
# (a FIFO the demo writes), and what happened goes to stdout. Nothing here
# is privileged or special: what the agent may do is decided by the kernel.
echo "@@ready $$"
n=0
while :; do
    IFS= read -r line <"$2" || continue
    n=$((n + 1))
    (eval "$line") 2>&1
    echo "@@done $n $?"
done
