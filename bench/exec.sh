#!/bin/bash
# bench-title: podenv exec (issue 5): start-up, python and find /usr vs native and bindfs, remote reads vs sshfs
# `podenv exec` benchmarks (issue 5), each against native and the named peers
# (bindfs for the local workload, sshfs for the remote one) in the same run,
# interleaved over ROUNDS rounds (hyperfine -N); pooled medians and ratios.
#
#   bench/exec.sh [BUILD_DIR (default build)]
#   env: ROUNDS (3), PODENV_CLUSTER_ID (bench), KEEP=1 keeps the raw data dir.
#
# Starts its own mini-cluster instance, bindfs mounts, an sshd on a free
# loopback port (throwaway keys) and sshfs/podenv mounts; everything is
# taken down at the end, also on failure. Needs root, hyperfine, bindfs,
# sshfs, openssh-server (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
B=$(realpath -m "${1:-build}")
ROUNDS=${ROUNDS:-3}
export PODENV_CLUSTER_ID=${PODENV_CLUSTER_ID:-bench}
export PODENV_BUILD=$B
export PODENV_CLUSTER_OWNER=$$ # `cluster reap` takes it down if we die hard

T=$(mktemp -d /tmp/podenv-bench-exec.XXXXXX)
MOUNTS=() # unmounted in reverse order
HF_PID=
cleanup() {
	set +e
	[ -n "$HF_PID" ] && kill "$HF_PID" 2>/dev/null && wait "$HF_PID" 2>/dev/null
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${MOUNTS[i]}
		mountpoint -q "$m" || continue
		case $m in
		*/proc | */dev | */sys) umount "$m" ;;
		*) fusermount3 -u "$m" 2>/dev/null || fusermount -u "$m" 2>/dev/null || umount -l "$m" ;;
		esac
	done
	for m in "$T/sshfs_cold" "$T/pm_cold"; do mountpoint -q "$m" && fusermount3 -u "$m"; done
	[ -f "$T/ssh/sshd.pid" ] && kill "$(cat "$T/ssh/sshd.pid")" 2>/dev/null
	[ -f "$T/pmount.pids" ] && for p in $(cat "$T/pmount.pids"); do kill "$p" 2>/dev/null; done
	(cd "$REPO" && tests/cluster/cluster down >/dev/null 2>&1)
	if [ "${KEEP:-0}" = 1 ]; then echo "raw data: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE

make --no-print-directory O="$B" all >/dev/null
for t in hyperfine bindfs sshfs /usr/sbin/sshd fusermount3; do
	command -v $t >/dev/null || { echo "bench/exec.sh: $t missing (make deps)" >&2; exit 1; }
done

tests/cluster/cluster up >/dev/null
P=$(tests/cluster/cluster status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pod"]["pid"])')
PE="$B/podenv exec -t pid/$P --"
ROOT=/proc/$P/root
cd "$T" # a neutral working directory (podenv keeps the working directory local)

# --- peers ------------------------------------------------------------------
# bindfs of / (defaults, and "cached": kernel_cache + 60 s timeouts), chroot-able.
mkdir -p bind bindc
bindfs / "$T/bind"
MOUNTS+=("$T/bind")
bindfs -o kernel_cache,entry_timeout=60,attr_timeout=60,negative_timeout=60 / "$T/bindc"
MOUNTS+=("$T/bindc")
for m in bind bindc; do
	for d in proc dev sys; do
		mount --bind /$d "$T/$m/$d"
		MOUNTS+=("$T/$m/$d")
	done
done

# sshd on a free loopback port, throwaway host and user keys.
mkdir -p ssh /run/sshd
SSH_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N '' -f ssh/host_ed25519
ssh-keygen -q -t ed25519 -N '' -f ssh/id_ed25519
cp ssh/id_ed25519.pub ssh/authorized_keys
cat >ssh/sshd_config <<EOF
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $T/ssh/host_ed25519
AuthorizedKeysFile $T/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $T/ssh/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
/usr/sbin/sshd -f "$T/ssh/sshd_config"
SSHO=IdentityFile=$T/ssh/id_ed25519,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,port=$SSH_PORT
mkdir -p sshfs sshfs_cold pm pm_cold
for _ in $(seq 50); do sshfs -o "$SSHO" "root@127.0.0.1:$ROOT/" "$T/sshfs" 2>"$T/sshfs.err" && break; sleep 0.1; done
mountpoint -q "$T/sshfs" || { cat "$T/sshfs.err" >&2; exit 1; }
MOUNTS+=("$T/sshfs")
# podenv mount in the background, its pid recorded for the clean-up.
cat >pmount <<EOF
#!/bin/sh
# pmount DIR: a fresh podenv mount of the pod at DIR (unmounting an old one)
mountpoint -q \$1 && fusermount3 -u \$1
while mountpoint -q \$1; do sleep 0.01; done
setsid $B/podenv mount pid/$P \$1 >>$T/pmount.log 2>&1 </dev/null &
echo \$! >>$T/pmount.pids
for i in \$(seq 500); do mountpoint -q \$1 && exit 0; sleep 0.01; done
echo "podenv mount failed" >&2; exit 1
EOF
chmod +x pmount
./pmount "$T/pm"
MOUNTS+=("$T/pm")

# Fresh mounts before every run of the "cold" variants (server side stays cached).
cat >remount_sshfs <<EOF
#!/bin/sh
mountpoint -q $T/sshfs_cold && fusermount3 -u $T/sshfs_cold
exec sshfs -o $SSHO root@127.0.0.1:$ROOT/ $T/sshfs_cold
EOF
cat >remount_pm <<EOF
#!/bin/sh
exec $T/pmount $T/pm_cold
EOF
chmod +x remount_sshfs remount_pm

for f in "$ROOT" "$T/sshfs" "$T/pm"; do
	[ "$(stat -c %s "$f/data/big.bin")" = 67108864 ] || { echo "bench/exec.sh: $f/data/big.bin missing" >&2; exit 1; }
done

echo "- load average before: $(cut -d" " -f1-3 /proc/loadavg)" >>"$T/head"
echo "- build $B, pod pid $P, sshd 127.0.0.1:$SSH_PORT, $ROUNDS rounds" >>"$T/head"

hf() { # NAME ARGS...: one hyperfine call, JSON to $T/NAME
	local name=$1
	shift
	# In the background, so that a signal runs the clean-up at once.
	hyperfine -N --style none --export-json "$T/$name.json" "$@" >"$T/hf.log" 2>&1 &
	HF_PID=$!
	wait $HF_PID || { cat "$T/hf.log" >&2; exit 1; }
	HF_PID=
}

FIND_USR="sh -c 'find /usr -xdev | wc -l'"
# First runs, before any warm-up (cold-ish: a fresh podenv/sshfs mount, the
# server side's page cache warm from the setup above).
hf first --runs 1 \
	"$PE /usr/bin/python3 -c pass" "$PE $FIND_USR" \
	"$PE cat /data/big.bin" "$PE sh -c 'find /app/tree | wc -l'" \
	"cat $T/sshfs/data/big.bin" "sh -c 'find $T/sshfs/app/tree | wc -l'"

echo "- check: find /usr -xdev: native $(find /usr -xdev | wc -l), podenv $($PE sh -c 'find /usr -xdev | wc -l'); find /app/tree: native $(find "$ROOT/app/tree" | wc -l), podenv $($PE sh -c 'find /app/tree | wc -l'), sshfs $(find "$T/sshfs/app/tree" | wc -l)" >>"$T/head"

for r in $(seq "$ROUNDS"); do
	echo "round $r/$ROUNDS" >&2
	hf start$r --warmup 3 --runs 20 "true" "$PE true"
	hf py$r --warmup 3 --runs 20 \
		"/usr/bin/python3 -c pass" "chroot / /usr/bin/python3 -c pass" "$PE /usr/bin/python3 -c pass" \
		"chroot $T/bind /usr/bin/python3 -c pass" "chroot $T/bindc /usr/bin/python3 -c pass"
	hf find$r --warmup 1 --runs 4 \
		"$FIND_USR" "chroot / $FIND_USR" "$PE $FIND_USR" "chroot $T/bind $FIND_USR" "chroot $T/bindc $FIND_USR"
	# Remote workload, warm mounts: podenv exec (a fresh FUSE mount per run),
	# podenv mount and sshfs kept mounted.
	hf big$r --warmup 1 --runs 5 \
		"cat $ROOT/data/big.bin" "$PE cat /data/big.bin" "cat $T/pm/data/big.bin" "cat $T/sshfs/data/big.bin"
	hf tree$r --warmup 1 --runs 5 \
		"sh -c 'find $ROOT/app/tree | wc -l'" "$PE sh -c 'find /app/tree | wc -l'" \
		"sh -c 'find $T/pm/app/tree | wc -l'" "sh -c 'find $T/sshfs/app/tree | wc -l'"
	# Cold mounts: a fresh sshfs / podenv mount before every run.
	hf bigc$r --runs 5 -p "$T/remount_pm" -p "$T/remount_sshfs" \
		"cat $T/pm_cold/data/big.bin" "cat $T/sshfs_cold/data/big.bin"
	hf treec$r --runs 5 -p "$T/remount_pm" -p "$T/remount_sshfs" \
		"sh -c 'find $T/pm_cold/app/tree | wc -l'" "sh -c 'find $T/sshfs_cold/app/tree | wc -l'"
done

pool() { # NAME LABELS...
	local name=$1
	shift
	/usr/bin/python3 "$REPO/bench/pool.py" hyperfine "$@" -- "$T"/"$name"[0-9]*.json
}
{
	/usr/bin/python3 "$REPO/bench/pool.py" hyperfine 0=first_py 1=first_findusr 2=first_big 3=first_tree \
		4=first_sshfs_big 5=first_sshfs_tree -- "$T/first.json"
	pool start 0=true 1=pe_true
	pool py 0=py 1=py_chroot 2=pe_py 3=bind_py 4=bindc_py
	pool find 0=fu 1=fu_chroot 2=pe_fu 3=bind_fu 4=bindc_fu
	pool big 0=big 1=pe_big 2=pm_big 3=sshfs_big
	pool tree 0=tree 1=pe_tree 2=pm_tree 3=sshfs_tree
	pool bigc 0=pmc_big 1=sshfsc_big
	pool treec 0=pmc_tree 1=sshfsc_tree
} >"$T/pooled"

/usr/bin/python3 - "$T/pooled" "$P" "$B" "$T" >"$T/report" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    k, n, mn, med = line.split()
    rows[k] = (int(n), float(mn), float(med))
P, B, T = sys.argv[2:5]
m = lambda k: rows[k][2]
PE = f"{B}/podenv exec -t pid/{P} --"
def ok(x): return "**met**" if x else "**MISSED**"

def table(title, items, base, extra=None):
    print(f"\n## {title}")
    print("| variant | command | n | min ms | median ms | ratio vs native |" + (f" {extra[0]} |" if extra else ""))
    print("|---|---|---|---|---|---|" + ("---|" if extra else ""))
    for k, label, cmd in items:
        n, mn, med = rows[k]
        ex = f" {extra[1](k)} |" if extra else ""
        print(f"| {label} | `{cmd}` | {n} | {mn:.2f} | {med:.2f} | {med / m(base):.2f} |{ex}")

FU = "sh -c 'find /usr -xdev \\| wc -l'"
start = m("pe_true") - m("true")
print(f"\n## podenv's own start-up: `{PE} true` vs `true`")
print(f"| command | n | min ms | median ms |\n|---|---|---|---|")
for k, c in [("true", "true"), ("pe_true", f"{PE} true")]:
    print(f"| `{c}` | {rows[k][0]} | {rows[k][1]:.2f} | {rows[k][2]:.2f} |")
print(f"\npodenv exec start-up + tear-down (agent spawn, handshake, namespaces, FUSE mount): **{start:.2f} ms** (median difference)")

table("Local-by-default: `python3 -c pass` start-up (target ≤ 1.3× native)", [
    ("py", "native", "/usr/bin/python3 -c pass"),
    ("py_chroot", "native chroot /", "chroot / /usr/bin/python3 -c pass"),
    ("pe_py", "**podenv exec**", f"{PE} /usr/bin/python3 -c pass"),
    ("bind_py", "bindfs default", f"chroot {T}/bind /usr/bin/python3 -c pass"),
    ("bindc_py", "bindfs cached", f"chroot {T}/bindc /usr/bin/python3 -c pass")], "py")
r = m("pe_py") / m("py")
rn = (m("pe_py") - start) / m("py")
print(f"\npodenv/native **{r:.2f}×** ({ok(r <= 1.3)}); without podenv's start-up ({start:.2f} ms): {rn:.2f}×; "
      f"bindfs default / cached vs native chroot: {m('bind_py') / m('py_chroot'):.2f}× / {m('bindc_py') / m('py_chroot'):.2f}×")

table("Local-by-default: `find /usr -xdev | wc -l` (target ≤ 1.3× native)", [
    ("fu", "native", FU), ("fu_chroot", "native chroot /", f"chroot / {FU}"),
    ("pe_fu", "**podenv exec**", f"{PE} {FU}"),
    ("bind_fu", "bindfs default", f"chroot {T}/bind {FU}"),
    ("bindc_fu", "bindfs cached", f"chroot {T}/bindc {FU}")], "fu")
r = m("pe_fu") / m("fu")
print(f"\npodenv/native **{r:.2f}×** ({ok(r <= 1.3)}); bindfs default / cached vs native chroot: "
      f"{m('bind_fu') / m('fu_chroot'):.2f}× / {m('bindc_fu') / m('fu_chroot'):.2f}×")

MiB64 = 64 * 1024 * 1024
mbs = lambda k: f"{MiB64 / m(k) / 1e3:.0f}"
table("Remote: read the pod's 64 MiB /data/big.bin (target: faster than sshfs)", [
    ("big", "native", f"cat /proc/{P}/root/data/big.bin"),
    ("pe_big", "**podenv exec** (fresh mount every run)", f"{PE} cat /data/big.bin"),
    ("pm_big", "podenv mount, kept mounted", f"cat {T}/pm/data/big.bin"),
    ("sshfs_big", "sshfs, kept mounted", f"cat {T}/sshfs/data/big.bin"),
    ("pmc_big", "podenv mount, fresh mount every run", f"cat {T}/pm_cold/data/big.bin"),
    ("sshfsc_big", "sshfs, fresh mount every run", f"cat {T}/sshfs_cold/data/big.bin")], "big",
    ("MB/s", mbs))
print(f"\nsshfs / podenv time: podenv exec vs sshfs kept mounted **{m('sshfs_big') / m('pe_big'):.2f}×** "
      f"({ok(m('pe_big') < m('sshfs_big'))}); mount vs mount, kept: {m('sshfs_big') / m('pm_big'):.2f}× "
      f"({ok(m('pm_big') < m('sshfs_big'))}); fresh: {m('sshfsc_big') / m('pmc_big'):.2f}× ({ok(m('pmc_big') < m('sshfsc_big'))})")

table("Remote: `find` over the 2,000-file tree /app/tree (2,041 entries) (target: faster than sshfs)", [
    ("tree", "native", f"sh -c 'find /proc/{P}/root/app/tree \\| wc -l'"),
    ("pe_tree", "**podenv exec** (fresh mount every run)", f"{PE} sh -c 'find /app/tree \\| wc -l'"),
    ("pm_tree", "podenv mount, kept mounted", f"sh -c 'find {T}/pm/app/tree \\| wc -l'"),
    ("sshfs_tree", "sshfs, kept mounted", f"sh -c 'find {T}/sshfs/app/tree \\| wc -l'"),
    ("pmc_tree", "podenv mount, fresh mount every run", f"sh -c 'find {T}/pm_cold/app/tree \\| wc -l'"),
    ("sshfsc_tree", "sshfs, fresh mount every run", f"sh -c 'find {T}/sshfs_cold/app/tree \\| wc -l'")], "tree")
pe_net = m("pe_tree") - start
print(f"\nsshfs / podenv time: podenv exec (start-up included) vs sshfs kept mounted **{m('sshfs_tree') / m('pe_tree'):.2f}×** "
      f"({ok(m('pe_tree') < m('sshfs_tree'))}), vs sshfs fresh mount {m('sshfsc_tree') / m('pe_tree'):.2f}×; "
      f"mount vs mount, kept: {m('sshfs_tree') / m('pm_tree'):.2f}× ({ok(m('pm_tree') < m('sshfs_tree'))}); "
      f"fresh: {m('sshfsc_tree') / m('pmc_tree'):.2f}× ({ok(m('pmc_tree') < m('sshfsc_tree'))}); "
      f"podenv exec minus start-up: {pe_net:.2f} ms")

print("\n## First runs (one run each, before any warm-up; podenv exec always mounts afresh)")
print("| command | ms | same command's median |\n|---|---|---|")
for k, base, c in [("first_py", "pe_py", f"{PE} /usr/bin/python3 -c pass"),
                   ("first_findusr", "pe_fu", f"{PE} {FU}"),
                   ("first_big", "pe_big", f"{PE} cat /data/big.bin"),
                   ("first_tree", "pe_tree", f"{PE} sh -c 'find /app/tree \\| wc -l'"),
                   ("first_sshfs_big", "sshfs_big", f"cat {T}/sshfs/data/big.bin (first read after mounting)"),
                   ("first_sshfs_tree", "sshfs_tree", f"sh -c 'find {T}/sshfs/app/tree \\| wc -l' (first after mounting)")]:
    print(f"| `{c}` | {m(k):.2f} | {m(base):.2f} |")
with open(T + "/summary", "w") as f:
    f.write(f"> start-up {start:.1f} ms; python3 {m('pe_py') / m('py'):.2f}× native; find /usr {m('pe_fu') / m('fu'):.2f}× native "
            f"(bindfs {m('bind_fu') / m('fu_chroot'):.1f}×); 64 MiB read {m('sshfs_big') / m('pe_big'):.2f}× faster than sshfs; "
            f"find /app/tree at {m('sshfs_tree') / m('pe_tree'):.2f}× the speed of sshfs kept mounted\n")
EOF
cat "$T/summary"
echo
cat "$T/head" "$T/report"
