package credhelper

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"
)

// Shells are the shells "completion" prints a script for.
var Shells = []string{"bash", "zsh", "fish"}

// Info answers the actions that need neither the config nor the token
// cache: version, help and completion. It reports whether args named one of
// them, and the exit code. The binary calls it before FromEnv, so these
// work even while the config file is broken.
func Info(args []string, stdout io.Writer) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "--version", "-v", "version":
		if len(args) != 1 {
			return 0, false
		}
		_ = credentials.PrintVersion(stdout)
		return 0, true
	case "--help", "-h", "help":
		fmt.Fprintf(stdout, "%s\n\n%s\n", usage(), helpText)
		return 0, true
	case "completion":
		if len(args) != 2 || !slices.Contains(Shells, args[1]) {
			fmt.Fprintf(stdout, "Usage: %s completion %s\n", credentials.Name, strings.Join(Shells, "|"))
			return 1, true
		}
		_, _ = io.WriteString(stdout, completionScripts[args[1]])
		return 0, true
	}
	return 0, false
}

func usage() string {
	return fmt.Sprintf("Usage: %s <get|store|erase|list|version|help|completion %s>", credentials.Name, strings.Join(Shells, "|"))
}

// completionScripts complete the helper's fixed actions. They are static:
// the helper stays small and fast, without a command-line framework.
var completionScripts = map[string]string{
	"bash": `# bash completion for docker-credential-ecrgate
_docker_credential_ecrgate() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	COMPREPLY=()
	case $COMP_CWORD in
	1) COMPREPLY=($(compgen -W "get store erase list version help completion" -- "$cur")) ;;
	2) if [[ ${COMP_WORDS[1]} == completion ]]; then COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")); fi ;;
	esac
}
complete -F _docker_credential_ecrgate docker-credential-ecrgate
`,
	"zsh": `#compdef docker-credential-ecrgate
# zsh completion for docker-credential-ecrgate
_docker-credential-ecrgate() {
	local -a actions
	actions=(
		'get:print the credentials for the registry host read from stdin'
		'store:accept docker login (ecrgate fetches tokens itself)'
		'erase:drop the cached token of the registry host read from stdin'
		'list:list the registries with a cached token'
		'version:print the version'
		'help:print usage and examples'
		'completion:print a shell completion script'
	)
	if (( CURRENT == 2 )); then
		_describe -t actions 'action' actions
	elif (( CURRENT == 3 )) && [[ ${words[2]} == completion ]]; then
		_values 'shell' bash zsh fish
	fi
}
if [[ ${funcstack[1]} == _docker-credential-ecrgate ]]; then
	_docker-credential-ecrgate "$@"
else
	compdef _docker-credential-ecrgate docker-credential-ecrgate
fi
`,
	"fish": `# fish completion for docker-credential-ecrgate
complete -c docker-credential-ecrgate -f
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a get -d 'Print the credentials for the registry host read from stdin'
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a store -d 'Accept docker login (ecrgate fetches tokens itself)'
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a erase -d 'Drop the cached token of the registry host read from stdin'
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a list -d 'List the registries with a cached token'
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a version -d 'Print the version'
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a help -d 'Print usage and examples'
complete -c docker-credential-ecrgate -n __fish_use_subcommand -a completion -d 'Print a shell completion script'
complete -c docker-credential-ecrgate -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'
`,
}
