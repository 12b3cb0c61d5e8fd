# bash completion for podenv                                -*- shell-script -*-

_podenv_targets()
{
	local cur=$1 pids p
	case $cur in
	pid/*)
		pids=()
		for p in /proc/[0-9]*; do
			pids+=("pid/${p#/proc/}")
		done
		COMPREPLY=($(compgen -W "${pids[*]}" -- "$cur"))
		;;
	pod/* | deployment/* | container/*)
		# the cluster's targets (podenv ls, bounded), pods also without
		# their container
		local t
		t=$(timeout 3 podenv ls 2>/dev/null)
		t="$t $(printf '%s\n' $t | sed -n 's|^\(pod/[^/]*\)/container/.*|\1|p' | sort -u)"
		t="$t $(printf '%s\n' $t | sed -n 's|^pod/[^/]*/\(container/.*\)|\1|p' | sort -u)"
		COMPREPLY=($(compgen -W "$t" -- "$cur"))
		;;
	*)
		COMPREPLY=($(compgen -W "pid/ pod/ deployment/ container/ rollout/ job/ cronjob/ statefulset/ service/ replicaset/ targetless" -- "$cur"))
		[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]] && compopt -o nospace 2>/dev/null
		;;
	esac
}

_podenv()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="exec shell mount ls config debug explain doctor help"
	local cmd= i
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-*) ;;
		*)
			cmd=${words[i]}
			break
			;;
		esac
	done

	case $prev in
	-t | --target)
		_podenv_targets "$cur"
		return
		;;
	-f | --config-file | --kubeconfig | --env-file | --trace)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--fs-mode)
		COMPREPLY=($(compgen -W "read write local localwithoverrides" -- "$cur"))
		return
		;;
	esac

	case $cmd in
	"")
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-v --verbose -q --quiet -h --help -V --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		;;
	help)
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		;;
	config)
		COMPREPLY=($(compgen -W "check schema -f --config-file" -- "$cur"))
		;;
	debug)
		COMPREPLY=($(compgen -W "agent -t --target" -- "$cur"))
		;;
	ls)
		COMPREPLY=($(compgen -W "-n --target-namespace -o -f --config-file --context
			--kubeconfig -c --accept-invalid-certificates -h --help" -- "$cur"))
		[[ $prev == -o ]] && COMPREPLY=(json)
		;;
	exec | shell | mount | explain | doctor)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-f --config-file -t --target -n --target-namespace
				-a --agent-namespace -l --agent-log-level -i --agent-image --agent-ttl
				--agent-startup-timeout -e --ephemeral-container --fs-mode
				-x --override-env-vars-exclude -s --override-env-vars-include
				--no-remote-dns --skip-processes -c --accept-invalid-certificates --steal
				--no-outgoing --no-tcp-outgoing --no-udp-outgoing --no-network --no-telemetry
				--context --kubeconfig --env-file -k --key --connect-tcp
				--disable-version-check --trace --daemon -h --help" -- "$cur"))
		elif [[ $cmd == exec ]]; then
			COMPREPLY=($(compgen -c -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		;;
	esac
}
complete -F _podenv podenv
