package doctor

import (
	"context"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ecrgate/ecrgate/pkg/awsconf"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/dockerconfig"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// STS is the part of the STS client the doctor uses; *sts.Client fits.
type STS interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// ECR is the read-only part of the ECR client the doctor uses; *ecr.Client
// fits. It has no method that changes anything.
type ECR interface {
	repocreate.ReadECR
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

var (
	_ STS = (*sts.Client)(nil)
	_ ECR = (*ecr.Client)(nil)
)

// AWS holds the clients for one registry.
type AWS struct {
	STS STS
	ECR ECR
}

// ClientsFunc returns the AWS clients for registry reg acting as id.
type ClientsFunc func(ctx context.Context, reg ecrhost.Registry, id awsconf.Identity) (AWS, error)

// Options configure Run. Zero values mean the real thing.
type Options struct {
	// ConfigPath is --config ("" : ECRGATE_CONFIG, else the default path).
	ConfigPath string
	// Env is the environment (os.Environ()).
	Env []string
	// Clients builds the AWS clients of a registry (default SDKClients,
	// the same per-registry SDK configuration the proxy uses).
	Clients ClientsFunc
	// HTTPClient reaches the local proxy (default: 5 s timeout, no proxy).
	HTTPClient *http.Client
	// DockerdProxy tells dockerd's proxy settings (default
	// DockerdProxyFrom(Env, DefaultDropInDirs)).
	DockerdProxy func(ctx context.Context) (DockerdProxy, error)
	// CADir is the local CA's directory (default localca.DefaultDir(Env)).
	CADir string
	// CertsDirs are where Docker looks for per-registry CAs, in order
	// (default /etc/docker/certs.d, then ~/.docker/certs.d).
	CertsDirs []string
	// DockerConfig is Docker's config.json (default dockerconfig.Path(Env)).
	DockerConfig string
	// LookPath finds docker-credential-ecrgate (default exec.LookPath).
	LookPath func(file string) (string, error)
	// Timeout bounds each check (default DefaultTimeout).
	Timeout time.Duration
}

// doctor is one run: the options with defaults, the configuration once the
// config check has loaded it, and the results so far (checks look at the
// ones they depend on).
type doctor struct {
	o   Options
	cfg *config.Config

	mu      sync.Mutex
	results map[string]Result
	aws     map[string]awsEntry // registry host -> clients
}

type awsEntry struct {
	c   AWS
	err error
}

// Run runs every check and returns the results in order: the config file
// first, then per registry the AWS identity, ECR access, create permission
// and native templates, then Docker's credHelpers, the proxy, and intercept
// mode's CA, dockerd proxy and certs.d.
func Run(ctx context.Context, o Options) []Result {
	if o.Clients == nil {
		o.Clients = SDKClients(o.Env)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	if o.DockerdProxy == nil {
		o.DockerdProxy = DockerdProxyFrom(o.Env, DefaultDropInDirs)
	}
	if o.CADir == "" {
		o.CADir = localca.DefaultDir(o.Env)
	}
	if o.CertsDirs == nil {
		o.CertsDirs = []string{localca.DockerCertsDir}
		if d := localca.DockerDesktopCertsDir(o.Env); d != "" {
			o.CertsDirs = append(o.CertsDirs, d)
		}
	}
	if o.DockerConfig == "" {
		o.DockerConfig = dockerconfig.Path(o.Env)
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	d := &doctor{o: o, results: map[string]Result{}, aws: map[string]awsEntry{}}

	var out []Result
	record := func(r Result) {
		d.mu.Lock()
		d.results[r.Name] = r
		d.mu.Unlock()
		out = append(out, r)
	}
	// The config check reads one local file and sets d.cfg for the
	// others: it runs here, not under a timeout.
	r := d.checkConfig(ctx)
	r.Name = "config"
	record(r)
	for _, c := range d.checks() {
		record(runOne(ctx, c, o.Timeout))
	}
	return out
}

// result returns the result of the earlier check name.
func (d *doctor) result(name string) (Result, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.results[name]
	return r, ok
}

// checks lists every check after the config check, for d.cfg.
func (d *doctor) checks() []Check {
	var cs []Check
	for _, host := range d.cfg.RegistryHosts() {
		reg, err := ecrhost.Parse(host)
		if err != nil {
			continue // the config check reported it
		}
		cs = append(cs,
			Check{Name: "aws identity " + reg.Host, Run: func(ctx context.Context) Result { return d.checkIdentity(ctx, reg) }},
			Check{Name: "ecr token " + reg.Host, Run: func(ctx context.Context) Result { return d.checkToken(ctx, reg) }},
			Check{Name: "create permission " + reg.Host, Run: func(ctx context.Context) Result { return d.checkCreate(ctx, reg) }},
			Check{Name: "native templates " + reg.Host, Run: func(ctx context.Context) Result { return d.checkNative(ctx, reg) }},
		)
	}
	cs = append(cs,
		Check{Name: "docker credHelpers", Run: d.checkDockerConfig},
		Check{Name: "credential helper", Run: d.checkHelperOnPath},
		Check{Name: "proxy", Run: d.checkProxy},
		Check{Name: "intercept ca", Run: d.checkCA},
		Check{Name: "dockerd proxy", Run: d.checkDockerdProxy},
		Check{Name: "intercept listener", Run: d.checkInterceptListener},
	)
	for _, host := range d.interceptHosts() {
		cs = append(cs, Check{Name: "ca installed " + host, Run: func(ctx context.Context) Result { return d.checkCAInstalled(ctx, host) }})
	}
	return cs
}

// clients returns the AWS clients of reg, built once per run.
func (d *doctor) clients(ctx context.Context, reg ecrhost.Registry) (AWS, error) {
	d.mu.Lock()
	e, ok := d.aws[reg.Host]
	d.mu.Unlock()
	if ok {
		return e.c, e.err
	}
	c, err := d.o.Clients(ctx, reg, d.identity(reg))
	d.mu.Lock()
	d.aws[reg.Host] = awsEntry{c, err}
	d.mu.Unlock()
	return c, err
}

// identity is the configured AWS identity of reg.
func (d *doctor) identity(reg ecrhost.Registry) awsconf.Identity {
	rc, _ := d.cfg.RegistryConfig(reg.Host)
	return awsconf.Identity{Profile: rc.Profile, RoleARN: rc.RoleARN, APIEndpoint: rc.APIEndpoint}
}

// doctorMaxAttempts keeps a doctor run quick when AWS cannot be reached.
const doctorMaxAttempts = 2

// SDKClients returns the default ClientsFunc: the AWS SDK configured by
// awsconf for the registry, as the proxy and the credential helper
// configure it (region, profile, role, endpoint overrides, FIPS and
// dual-stack endpoints, bounded instance-metadata lookups).
func SDKClients(env []string) ClientsFunc {
	return func(ctx context.Context, reg ecrhost.Registry, id awsconf.Identity) (AWS, error) {
		cfg, err := awsconf.Load(ctx, reg, id, awsconf.Options{Env: env, MaxAttempts: doctorMaxAttempts})
		if err != nil {
			return AWS{}, err
		}
		return AWS{STS: sts.NewFromConfig(cfg), ECR: ecr.NewFromConfig(cfg, awsconf.ECROptions(reg, id, env))}, nil
	}
}
