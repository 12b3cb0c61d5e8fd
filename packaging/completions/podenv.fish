# fish completion for podenv

set -l podenv_commands exec shell mount ls config debug explain doctor help

function __podenv_targets
    set -l tok (commandline -ct)
    if string match -q 'pid/*' -- $tok
        # fish globs have no [0-9]: keep the numeric entries of /proc.
        string replace -rf '^/proc/(\d+)$' 'pid/$1' -- /proc/*
    else
        printf '%s\n' pid/ pod/ deployment/ rollout/ job/ cronjob/ statefulset/ service/ replicaset/ targetless
    end
end

complete -c podenv -f
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -s v -l verbose -d 'More log output'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -s q -l quiet -d 'Errors only'
complete -c podenv -s h -l help -d 'Show help'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -s V -l version -d 'Show the version'

complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a exec -d "Run a command in the pod's environment"
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a shell -d "Interactive shell in the pod's environment"
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a mount -d "Mount the pod's root filesystem"
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a ls -d 'List the Kubernetes targets of a namespace'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a config -d 'Check a configuration, or print its schema'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a debug -d 'Talk to an agent directly'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a explain -d 'Where files, names and connections go'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a doctor -d 'Check this machine'
complete -c podenv -n "not __fish_seen_subcommand_from $podenv_commands" -a help -d 'Show help'

complete -c podenv -n "__fish_seen_subcommand_from help" -a "$podenv_commands"
complete -c podenv -n "__fish_seen_subcommand_from config" -a 'check schema'
complete -c podenv -n "__fish_seen_subcommand_from debug" -a agent

set -l run exec shell mount ls explain doctor debug
complete -c podenv -n "__fish_seen_subcommand_from $run" -s t -l target -x -a '(__podenv_targets)' -d Target
complete -c podenv -n "__fish_seen_subcommand_from $run config" -s f -l config-file -r -F -d 'Configuration file'
complete -c podenv -n "__fish_seen_subcommand_from $run" -s n -l target-namespace -x -d 'Target namespace'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l fs-mode -x -a 'read write local localwithoverrides' -d 'File system mode'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l steal -d 'Steal incoming traffic'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l no-outgoing -d 'Outgoing traffic leaves locally'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l no-remote-dns -d 'Resolve names locally'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l no-network -d 'Nothing through the pod'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l connect-tcp -x -d 'Use an agent listening there'
complete -c podenv -n "__fish_seen_subcommand_from $run" -l kubeconfig -r -F -d 'Kubeconfig file'
complete -c podenv -n "__fish_seen_subcommand_from exec" -l trace -r -F -d 'Write routing decisions as JSON lines'
complete -c podenv -n "__fish_seen_subcommand_from mount" -l daemon -d 'Return once mounted'
complete -c podenv -n "__fish_seen_subcommand_from ls" -s o -x -a json -d 'Output format'
complete -c podenv -n "__fish_seen_subcommand_from exec" -a '(__fish_complete_subcommand)'
