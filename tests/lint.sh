#!/bin/bash
# make lint: keeps module boundaries true (STYLE.md, "Modules").
#  - dependencies point one way: launcher -> {vfs, vnet, dns} -> proto -> common,
#    agent -> proto -> common, everything may read config;
#  - a module includes another only through its public header <mod>/<mod>.h
#    (common/ has one small header per component);
#  - banned functions that have safer replacements.
set -u
cd "$(dirname "$0")/.."
fail=0
allowed() {
	case $1 in
	common) echo "common" ;;
	config) echo "common config" ;;
	proto) echo "common config proto" ;;
	vfs) echo "common config proto vfs" ;;
	vnet) echo "common config proto vnet" ;;
	dns) echo "common config proto dns" ;;
	agent) echo "common config proto agent" ;;
	launcher) echo "common config proto vfs vnet dns launcher" ;;
	esac
}
for mod in common config proto vfs vnet dns agent launcher; do
	[ -d "$mod" ] || continue
	ok=$(allowed "$mod")
	while IFS=: read -r file _ inc; do
		dep=${inc#*\"}
		dep=${dep%%/*}
		hdr=${inc#*\"}
		hdr=${hdr%\"*}
		case " $ok " in
		*" $dep "*) ;;
		*) echo "lint: $file includes $hdr: $mod must not depend on $dep"; fail=1 ;;
		esac
		if [ "$dep" != "$mod" ] && [ "$dep" != common ] && [ "$hdr" != "$dep/$dep.h" ]; then
			echo "lint: $file includes $hdr: use the public header $dep/$dep.h"
			fail=1
		fi
	done < <(grep -Hn '^#include "[a-z]*/' "$mod"/*.[ch] 2>/dev/null | sed 's/:\([0-9]*\):/:\1:/')
done
# Functions with a safer spelling in this codebase.
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|system)\(' \
	$(ls -d common config proto vfs vnet dns agent launcher 2>/dev/null) -r --include='*.c' --include='*.h'; then
	echo "lint: banned function above (use snprintf/buf_printf/strtok_r/...)"
	fail=1
fi
[ $fail -eq 0 ] && echo "lint: ok"
exit $fail
