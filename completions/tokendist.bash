# bash completion for tokendist(1).
#
# The commands and each command's options are read from `tokendist --help`
# and `tokendist COMMAND --help` when completing, so they never drift from
# the binary.  Installed as share/bash-completion/completions/tokendist.

# Prints the options of a command, one per line, each followed by a space
# and "1" when it takes a value.
_tokendist_options()
{
    "$1" "$2" --help 2>/dev/null |
        sed -n 's/^  \(--[a-z][a-z0-9-]*\)\( VALUE\| N\)\{0,1\} .*/\1\2/p' |
        while read -r opt arg; do echo "$opt ${arg:+1}"; done
}

_tokendist()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local bin=${COMP_WORDS[0]} cmd="" i opts line
    COMPREPLY=()

    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in -*) ;; *) cmd=${COMP_WORDS[i]}; break ;; esac
    done
    if [[ -z $cmd ]]; then
        local cmds
        cmds=$("$bin" --help 2>/dev/null | sed -n '/^命令:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
        COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
        return
    fi
    if [[ $cmd == files && $COMP_CWORD -eq $((i + 1)) && $cur != -* ]]; then
        COMPREPLY=($(compgen -W "list download" -- "$cur"))
        return
    fi

    # The value of an option that takes one.
    if [[ $prev == --* && $cur != -* ]]; then
        while read -r line; do
            [[ ${line% *} == "$prev" && ${line##* } == 1 ]] || continue
            case $prev in
            --env-file|--tls-cert|--tls-key|--cache) COMPREPLY=($(compgen -f -- "$cur")) ;;
            --out) COMPREPLY=($(compgen -d -- "$cur")) ;;
            --field) COMPREPLY=($(compgen -W "access_token tenant_access_token" -- "$cur")) ;;
            --real-ip-header) COMPREPLY=($(compgen -W "X-Forwarded-For X-Real-IP" -- "$cur")) ;;
            --trusted-proxy) COMPREPLY=($(compgen -W "127.0.0.1/32 ::1/128 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16" -- "$cur")) ;;
            --allowed-host) COMPREPLY=($(compgen -A hostname -- "$cur")) ;;
            --s3-region) COMPREPLY=($(compgen -W "ap-guangzhou ap-shanghai ap-beijing ap-nanjing ap-chengdu ap-chongqing ap-hongkong ap-singapore" -- "$cur")) ;;
            esac
            return
        done < <(_tokendist_options "$bin" "$cmd")
    fi
    opts=$(_tokendist_options "$bin" "$cmd" | cut -d' ' -f1)
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}

complete -F _tokendist tokendist
