package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/localca"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the local CA that intercept mode uses for ECR hosts",
		Long: `Intercept mode answers dockerd's CONNECT requests for ECR hosts with
certificates from a local CA. The CA's certificate carries X.509 name
constraints that permit only the Amazon ECR registry domains, so even its key
cannot vouch for any other site. Its key stays in a 0700 directory
($XDG_DATA_HOME/ecrgate/ca, default ~/.local/share/ecrgate/ca).

Intercept mode needs the CA created once and trusted by Docker for your
registries: "ecrgate ca init", then "ecrgate ca install".`,
		Example: `  ecrgate ca init
  sudo ecrgate ca install --dir ~/.local/share/ecrgate/ca   # dockerd on Linux
  ecrgate ca install --docker-desktop                       # Docker Desktop; then restart it
  ecrgate ca show`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCAInitCmd(), newCAShowCmd(), newCAInstallCmd(), newCAUninstallCmd())
	return cmd
}

func newCAInitCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the local CA",
		Long: `Creates an ECDSA P-256 CA, valid for ten years, whose name constraints permit
only ECR registry host names. It never replaces an existing CA.`,
		Example: `  ecrgate ca init
  ecrgate ca init --dir /var/lib/ecrgate/ca`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			explicit := dir != ""
			if !explicit {
				dir = localca.DefaultDir(env)
			}
			ca, err := localca.Init(dir, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created the local CA in %s\n", ca.Dir())
			fmt.Fprintf(out, "  certificate:         %s\n", filepath.Join(ca.Dir(), localca.CertFile))
			fmt.Fprintf(out, "  SHA-256 fingerprint: %s\n", ca.Fingerprint())
			fmt.Fprintf(out, "  valid until:         %s\n", ca.Certificate().NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(out, "  permits:             %d ECR registry domains only (ecrgate ca show lists them)\n", len(ca.Certificate().PermittedDNSDomains))
			flag := ""
			if explicit {
				flag = " --dir " + ca.Dir()
			}
			fmt.Fprintf(out, "next: make Docker trust it for your registries:\n")
			fmt.Fprintf(out, "  sudo ecrgate ca install --dir %s   (Linux: /etc/docker/certs.d)\n", ca.Dir())
			fmt.Fprintf(out, "  ecrgate ca install%s --docker-desktop   (Docker Desktop: ~/.docker/certs.d)\n", flag)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA directory (default $XDG_DATA_HOME/ecrgate/ca or ~/.local/share/ecrgate/ca)")
	return cmd
}

func newCAShowCmd() *cobra.Command {
	var (
		dir     string
		pemOnly bool
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the CA certificate, its fingerprint, validity and name constraints",
		Long: `Prints the local CA's subject, SHA-256 fingerprint, validity, the ECR domains
its name constraints permit, and the certs.d files "ecrgate ca install" wrote.
With --pem it prints only the certificate, to hand to another trust store.`,
		Example: `  ecrgate ca show
  ecrgate ca show --pem > ecrgate-ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir = caDir(dir, os.Environ(), cmd.ErrOrStderr())
			ca, err := localca.Load(dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if pemOnly {
				_, err := out.Write(ca.PEM())
				return err
			}
			writeCAInfo(out, ca, time.Now())
			if files, err := localca.Installed(ca.Dir()); err == nil && len(files) > 0 {
				fmt.Fprintf(out, "installed by ecrgate ca install (%s):\n", filepath.Join(ca.Dir(), localca.ManifestFile))
				for _, f := range files {
					fmt.Fprintf(out, "  %s\n", f)
				}
			}
			_, err = out.Write(ca.PEM())
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "CA directory (default $XDG_DATA_HOME/ecrgate/ca or ~/.local/share/ecrgate/ca)")
	cmd.Flags().BoolVar(&pemOnly, "pem", false, "print only the PEM certificate")
	return cmd
}

// writeCAInfo prints what a user checks about the CA.
func writeCAInfo(out io.Writer, ca *localca.CA, now time.Time) {
	c := ca.Certificate()
	fmt.Fprintf(out, "certificate:         %s\n", filepath.Join(ca.Dir(), localca.CertFile))
	fmt.Fprintf(out, "subject:             %s\n", c.Subject.CommonName)
	fmt.Fprintf(out, "SHA-256 fingerprint: %s\n", ca.Fingerprint())
	state := fmt.Sprintf("%d days left", int(c.NotAfter.Sub(now).Hours()/24))
	if now.After(c.NotAfter) {
		state = "EXPIRED: run ecrgate ca uninstall, remove the CA files and run ecrgate ca init"
	}
	fmt.Fprintf(out, "valid:               %s to %s (%s)\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state)
	critical := "not critical"
	if c.PermittedDNSDomainsCritical {
		critical = "critical"
	}
	fmt.Fprintf(out, "name constraints (%s):\n", critical)
	fmt.Fprintf(out, "  permitted DNS domains (%d; each with its subdomains):\n", len(c.PermittedDNSDomains))
	for _, d := range c.PermittedDNSDomains {
		fmt.Fprintf(out, "    %s\n", d)
	}
	if len(c.ExcludedDNSDomains) > 0 {
		fmt.Fprintf(out, "  excluded DNS domains: %s\n", strings.Join(c.ExcludedDNSDomains, ", "))
	}
	var ips []string
	for _, n := range c.ExcludedIPRanges {
		ips = append(ips, n.String())
	}
	if len(ips) > 0 {
		fmt.Fprintf(out, "  excluded IP ranges:  %s (no IP address certificates)\n", strings.Join(ips, ", "))
	}
	if len(c.PermittedEmailAddresses) > 0 {
		fmt.Fprintf(out, "  permitted e-mail:    %s (none usable)\n", strings.Join(c.PermittedEmailAddresses, ", "))
	}
	if len(c.PermittedURIDomains) > 0 {
		fmt.Fprintf(out, "  permitted URI hosts: %s (none usable)\n", strings.Join(c.PermittedURIDomains, ", "))
	}
}

func newCAInstallCmd() *cobra.Command {
	var (
		dir, configPath, certsDir string
		registries                []string
		dockerDesktop             bool
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Make Docker trust the local CA for your ECR registries",
		Long: `Writes the CA certificate to <certs-dir>/<host>/ca.crt for each registry given
with --registry, or, without it, for every ECR registry in ecrgate's config
(default_registry, routes, registries, local_hosts). dockerd trusts a CA for
exactly the host whose directory holds it (no wildcards) and re-reads the
directory on every connection, so no restart is needed.

The default certs-dir is /etc/docker/certs.d, which needs root; Docker Desktop
reads ~/.docker/certs.d (--docker-desktop), copying it into its VM when it
starts: restart Docker Desktop afterwards. What is written is recorded in the
CA directory, so "ecrgate ca uninstall" (with the same --certs-dir) removes
exactly those files while they still hold this CA. A host directory or ca.crt
that is a symbolic link is never written through. Running it twice changes
nothing.`,
		Example: `  sudo ecrgate ca install --dir ~/.local/share/ecrgate/ca
  sudo ecrgate ca install --dir ~/.local/share/ecrgate/ca --registry 123456789012.dkr.ecr.us-east-1.amazonaws.com
  ecrgate ca install --docker-desktop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			dir = caDir(dir, env, cmd.ErrOrStderr())
			ca, err := localca.Load(dir)
			if err != nil {
				return err
			}
			hosts, cfg, err := caInstallHosts(registries, configPath, env)
			if err != nil {
				return err
			}
			switch {
			case dockerDesktop:
				if certsDir = localca.DockerDesktopCertsDir(env); certsDir == "" {
					return errors.New("cannot find ~/.docker/certs.d: HOME is not set; pass --certs-dir")
				}
			case certsDir == "":
				certsDir = localca.DockerCertsDir
			}
			out := cmd.OutOrStdout()
			rep, err := ca.Install(certsDir, hosts)
			if rep != nil {
				for _, p := range rep.Written {
					fmt.Fprintf(out, "wrote %s\n", p)
				}
				for _, p := range rep.Unchanged {
					fmt.Fprintf(out, "unchanged %s (already holds this CA)\n", p)
				}
			}
			if err != nil {
				if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
					again := "sudo ecrgate ca install --dir " + ca.Dir()
					for _, r := range registries {
						again += " --registry " + r
					}
					if configPath != "" {
						again += " --config " + configPath
					}
					if dockerDesktop || certsDir != localca.DockerCertsDir {
						again += " --certs-dir " + certsDir
					}
					return fmt.Errorf("%w\n%s is not writable by this user: run with sudo, naming the CA directory so root finds it: %s", err, certsDir, again)
				}
				return err
			}
			if !rep.Changed() {
				fmt.Fprintf(out, "nothing to do: Docker already trusts the local CA (%s) for %s\n", ca.Fingerprint(), strings.Join(hosts, ", "))
			} else {
				uninstall := "ecrgate ca uninstall"
				if abs, _ := filepath.Abs(certsDir); !slices.Contains(caUninstallDirs(nil, env), abs) {
					uninstall += " --certs-dir " + certsDir
				}
				fmt.Fprintf(out, "recorded in %s: \"%s\" removes exactly these files\n", rep.Manifest, uninstall)
				if dockerDesktop {
					fmt.Fprintln(out, "restart Docker Desktop: it copies ~/.docker/certs.d into its VM when it starts")
				} else {
					fmt.Fprintln(out, "dockerd re-reads certs.d on every connection: no restart needed")
				}
			}
			if cfg != nil && cfg.Intercept.Hosts == config.InterceptAllECR {
				fmt.Fprintln(out, "note: intercept.hosts is all-ecr, but Docker trusts a CA per host: install it for every other registry you push to with --registry")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA directory (default $XDG_DATA_HOME/ecrgate/ca or ~/.local/share/ecrgate/ca)")
	f.StringVar(&configPath, "config", "", "ecrgate config file (default $ECRGATE_CONFIG or ~/.config/ecrgate/config.yaml)")
	f.StringArrayVar(&registries, "registry", nil, "ECR registry host to trust the CA for (repeatable); default: every registry in the config")
	f.BoolVar(&dockerDesktop, "docker-desktop", false, "install into Docker Desktop's ~/.docker/certs.d")
	f.StringVar(&certsDir, "certs-dir", "", "Docker's per-registry certificate directory (default "+localca.DockerCertsDir+")")
	cmd.MarkFlagsMutuallyExclusive("docker-desktop", "certs-dir")
	return cmd
}

// caInstallHosts returns the normalized registry hosts to install the CA
// for: the flags, else every ECR registry the config names. The config is
// returned when it was read.
func caInstallHosts(flags []string, configPath string, env []string) ([]string, *config.Config, error) {
	if len(flags) > 0 {
		var hosts []string
		var errs []error
		for _, h := range flags {
			r, err := ecrhost.Parse(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("--registry %s: %w (the CA's name constraints permit only ECR registry hosts)", h, err))
				continue
			}
			hosts = append(hosts, r.Host)
		}
		return hosts, nil, errors.Join(errs...)
	}
	cfg, err := config.Load(configPath, env)
	if err != nil {
		return nil, nil, err
	}
	hosts := cfg.RegistryHosts()
	if len(hosts) == 0 {
		where := cfg.Path
		if where == "" {
			where = config.DefaultPath(env) + " (not found)"
		}
		return nil, nil, fmt.Errorf("no registries to install the CA for: pass --registry <account>.dkr.ecr.<region>.amazonaws.com, or set default_registry in %s", where)
	}
	return hosts, cfg, nil
}

func newCAUninstallCmd() *cobra.Command {
	var (
		dir       string
		certsDirs []string
	)
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the CA files that ecrgate ca install wrote",
		Long: `Removes the files "ecrgate ca install" recorded, each only if it is
<certs-dir>/<ECR registry host>/ca.crt in one of the certificate directories
looked in, is a regular file in a real directory (no symbolic links), and still
holds exactly this CA's certificate; a file changed since is left in place and
named, and so is one outside those directories. Host directories that become
empty are removed too. The CA directory must pass the checks that loading the
CA makes (yours, or any owner's under sudo, and closed to group and others).
Running it twice does nothing the second time. Use sudo if install needed it.

It looks in /etc/docker/certs.d and ~/.docker/certs.d, and in every
--certs-dir given: pass the --certs-dir that "ecrgate ca install" was given.`,
		Example: `  sudo ecrgate ca uninstall --dir ~/.local/share/ecrgate/ca
  ecrgate ca uninstall
  ecrgate ca uninstall --certs-dir /srv/docker/certs.d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := os.Environ()
			dir = caDir(dir, env, cmd.ErrOrStderr())
			if dir == "" {
				return errors.New("no CA directory: set HOME or XDG_DATA_HOME, or pass --dir")
			}
			lookIn := caUninstallDirs(certsDirs, env)
			rep, err := localca.Uninstall(dir, lookIn)
			out := cmd.OutOrStdout()
			if rep != nil {
				for _, p := range rep.Removed {
					fmt.Fprintf(out, "removed %s\n", p)
				}
				for _, p := range rep.RemovedDirs {
					fmt.Fprintf(out, "removed empty directory %s\n", p)
				}
				for _, p := range rep.Missing {
					fmt.Fprintf(out, "already gone: %s\n", p)
				}
				for _, p := range rep.Modified {
					fmt.Fprintf(out, "left in place: %s no longer holds this CA's certificate (changed since ecrgate wrote it, or a symbolic link); remove it yourself if it is no longer wanted\n", p)
				}
				for _, p := range rep.Elsewhere {
					fmt.Fprintf(out, "left in place: %s is not a file ecrgate ca install writes in the certificate directories looked in\n", p)
				}
				if len(rep.Elsewhere) > 0 {
					fmt.Fprintf(out, "looked in %s: if \"ecrgate ca install --certs-dir DIR\" wrote those files, run \"ecrgate ca uninstall --certs-dir DIR\"\n", strings.Join(lookIn, ", "))
				}
			}
			if err != nil {
				if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
					abs, _ := filepath.Abs(dir)
					again := "sudo ecrgate ca uninstall --dir " + abs
					for _, d := range certsDirs {
						again += " --certs-dir " + d
					}
					return fmt.Errorf("%w\nrun with sudo, naming the CA directory so root finds it: %s", err, again)
				}
				return err
			}
			switch {
			case len(rep.Removed)+len(rep.Missing)+len(rep.Modified)+len(rep.Elsewhere) == 0:
				fmt.Fprintf(out, "nothing to do: %s records no installed files\n", rep.Manifest)
			case len(rep.Elsewhere) > 0:
				fmt.Fprintf(out, "%s still records the files left elsewhere\n", rep.Manifest)
			default:
				fmt.Fprintf(out, "cleared %s\n", rep.Manifest)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA directory (default $XDG_DATA_HOME/ecrgate/ca or ~/.local/share/ecrgate/ca)")
	f.StringArrayVar(&certsDirs, "certs-dir", nil, "also look in this certificate directory, as given to ecrgate ca install (repeatable)")
	return cmd
}

// caUninstallDirs returns the certificate directories uninstall looks in:
// dockerd's, Docker Desktop's for env, and those given with --certs-dir.
// Files the manifest records anywhere else are never touched.
func caUninstallDirs(flags, env []string) []string {
	dirs := []string{localca.DockerCertsDir}
	if d := localca.DockerDesktopCertsDir(env); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range flags {
		if abs, err := filepath.Abs(d); err == nil && !slices.Contains(dirs, abs) {
			dirs = append(dirs, abs)
		}
	}
	return dirs
}

// caDir returns the CA directory: flag when set, else the default for env.
// Under sudo, where HOME is often root's, it falls back to the invoking
// user's default directory when root has no CA but that user has one, and
// says so on stderr.
func caDir(flag string, env []string, stderr io.Writer) string {
	if flag != "" {
		return flag
	}
	dir := localca.DefaultDir(env)
	sudoUser := environ.Map(env)["SUDO_USER"]
	if os.Geteuid() != 0 || sudoUser == "" || sudoUser == "root" || hasCA(dir) {
		return dir
	}
	u, err := user.Lookup(sudoUser)
	if err != nil || u.HomeDir == "" {
		return dir
	}
	alt := localca.DefaultDir([]string{"HOME=" + u.HomeDir})
	if !hasCA(alt) {
		return dir
	}
	fmt.Fprintf(stderr, "using the CA of %s in %s (pass --dir to choose another)\n", sudoUser, alt)
	return alt
}

// hasCA reports whether dir holds a CA certificate or an install manifest.
func hasCA(dir string) bool {
	if dir == "" {
		return false
	}
	for _, name := range []string{localca.CertFile, localca.ManifestFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}
