package cli

import (
	"github.com/spf13/cobra"
)

// addHelpCommands adds cobra's "completion" and "help" commands to root now,
// rather than when it executes, so they carry examples like every other
// command (and tests see the whole tree). Call it after every AddCommand.
func addHelpCommands(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "completion":
			c.Long += `
Completion for docker-credential-ecrgate, the credential helper, comes from
the helper itself: docker-credential-ecrgate completion bash|zsh|fish.`
			c.Example = `  # bash, now and in every new shell (needs the bash-completion package):
  source <(ecrgate completion bash)
  mkdir -p ~/.local/share/bash-completion/completions
  ecrgate completion bash > ~/.local/share/bash-completion/completions/ecrgate
  # zsh (a directory on $fpath, before compinit runs):
  ecrgate completion zsh > "${fpath[1]}/_ecrgate"
  # fish:
  ecrgate completion fish > ~/.config/fish/completions/ecrgate.fish`
			for _, sh := range c.Commands() {
				sh.Example = shellExamples[sh.Name()]
			}
		case "help":
			c.Example = `  ecrgate help serve
  ecrgate help ca install`
		}
	}
}

// shellExamples are the examples of "ecrgate completion <shell>".
var shellExamples = map[string]string{
	"bash": `  source <(ecrgate completion bash)
  ecrgate completion bash > ~/.local/share/bash-completion/completions/ecrgate`,
	"zsh": `  ecrgate completion zsh > "${fpath[1]}/_ecrgate"
  ecrgate completion zsh > "$(brew --prefix)/share/zsh/site-functions/_ecrgate"   # macOS with Homebrew`,
	"fish": `  ecrgate completion fish | source
  ecrgate completion fish > ~/.config/fish/completions/ecrgate.fish`,
	"powershell": `  ecrgate completion powershell | Out-String | Invoke-Expression
  ecrgate completion powershell >> $PROFILE`,
}
