package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ecrgate/ecrgate/pkg/awserr"
	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// checkConfig loads the configuration file and keeps it for the other
// checks (the defaults when it cannot be loaded).
func (d *doctor) checkConfig(context.Context) Result {
	env := d.o.Env
	path := d.o.ConfigPath
	if path == "" {
		path = config.DefaultPath(env)
	}
	cfg, err := config.Load(d.o.ConfigPath, env)
	if err != nil {
		d.cfg = config.Default(env)
		var problems []string
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				problems = append(problems, e.Error())
			}
		} else {
			problems = []string{err.Error()}
		}
		fix := "fix the file (ecrgate config check lists every problem with its line and key)"
		switch {
		case errors.Is(err, config.ErrOthersCanWrite):
			fix = "the detail says how (chmod go-w, or a file of your own); ecrgate serve refuses the file until then"
		case errors.Is(err, fs.ErrNotExist):
			fix = "create the file, or point --config or ECRGATE_CONFIG at the right one"
		}
		return Result{Status: Fail, Detail: strings.Join(problems, "; "), Fix: fix}
	}
	d.cfg = cfg
	hosts := cfg.RegistryHosts()
	switch {
	case cfg.Path == "" && len(hosts) == 0:
		where := path
		if where == "" {
			where = "~/.config/ecrgate/config.yaml (HOME is not set)"
		}
		return Result{Status: Warn, Detail: fmt.Sprintf("no configuration file at %s: the defaults apply, and they name no ECR registry", where),
			Fix: fmt.Sprintf("create %s with default_registry: <account>.dkr.ecr.<region>.amazonaws.com", where)}
	case len(hosts) == 0:
		return Result{Status: Warn, Detail: fmt.Sprintf("%s names no ECR registry, so there is nothing to push to through ecrgate", cfg.Path),
			Fix: "set default_registry: <account>.dkr.ecr.<region>.amazonaws.com (or registries:) in " + cfg.Path}
	}
	where := cfg.Path
	if where == "" {
		where = "no file (defaults)"
	}
	detail := fmt.Sprintf("%s: %s, %s, %s", where, plural(len(hosts), "registry", "registries"),
		plural(len(cfg.Templates), "template", "templates"), plural(len(cfg.Routes), "route", "routes"))
	if cfg.DryRun {
		detail += "; dry_run is on: ecrgate creates nothing"
	}
	return Result{Status: OK, Detail: detail}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// needs returns a skip result when the check name did not pass.
func (d *doctor) needs(name string) (Result, bool) {
	r, ok := d.result(name)
	if !ok || r.Status == OK || r.Status == Warn {
		return Result{}, false
	}
	return Result{Status: Skip, Detail: fmt.Sprintf("needs %q, which did not pass", name)}, true
}

// awsError explains err from operation op for reg the way the credential
// helper does (pkg/ecrauth), as a detail and a fix.
func (d *doctor) awsError(reg ecrhost.Registry, op string, err error) (detail, fix string) {
	id := d.identity(reg)
	if id.Profile == "" {
		id.Profile = environ.Get(d.o.Env, "AWS_PROFILE")
	}
	e := &ecrauth.Error{Registry: reg, Identity: id, Err: err}
	switch e.Kind() {
	case "other":
		return fmt.Sprintf("%s failed: %s", op, awserr.Short(err)),
			"check that this machine reaches AWS (proxy, VPC endpoints, api_endpoint: in the config) and that the region is right"
	case "access-denied":
		if op != "ecr:GetAuthorizationToken" {
			return fmt.Sprintf("%s is denied: %s", op, awserr.Short(err)),
				fmt.Sprintf("allow %s for this identity in its IAM policy", op)
		}
	}
	return splitFix(e.Error())
}

// fixVerbs start the "what to do" part of ecrauth's one-sentence messages.
var fixVerbs = []string{"run ", "attach ", "check ", "refresh ", "create ", "wait "}

// splitFix splits "problem: what to do" at the last ": " that starts what
// to do.
func splitFix(msg string) (detail, fix string) {
	for i := len(msg) - 2; i > 0; i-- {
		if msg[i] != ':' || msg[i+1] != ' ' {
			continue
		}
		rest := msg[i+2:]
		for _, v := range fixVerbs {
			if strings.HasPrefix(rest, v) {
				return msg[:i], rest
			}
		}
	}
	return msg, ""
}

// callerARN returns the identity's ARN from an earlier identity check.
func (d *doctor) callerARN(reg ecrhost.Registry) string {
	r, _ := d.result("aws identity " + reg.Host)
	arn, _, _ := strings.Cut(r.Detail, " ")
	if strings.HasPrefix(arn, "arn:") {
		return arn
	}
	return ""
}

func (d *doctor) checkIdentity(ctx context.Context, reg ecrhost.Registry) Result {
	c, err := d.clients(ctx, reg)
	if err != nil {
		detail, fix := d.awsError(reg, "loading the AWS configuration", err)
		return Result{Status: Fail, Detail: detail, Fix: fix}
	}
	out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		detail, fix := d.awsError(reg, "sts:GetCallerIdentity", err)
		return Result{Status: Fail, Detail: detail, Fix: fix}
	}
	arn, acct := aws.ToString(out.Arn), aws.ToString(out.Account)
	detail := fmt.Sprintf("%s (account %s", arn, acct)
	if id := d.identity(reg); id.Profile != "" {
		detail += fmt.Sprintf(", profile %q", id.Profile)
	}
	detail += ")"
	if !reg.Public && acct != "" && acct != reg.Account {
		return Result{Status: Warn, Detail: detail + fmt.Sprintf("; the registry belongs to account %s", reg.Account),
			Fix: fmt.Sprintf("cross-account use needs a registry or repository policy in %s that allows this identity, and ecrgate cannot read that account's creation templates; or set profile:/role_arn: for this registry", reg.Account)}
	}
	return Result{Status: OK, Detail: detail}
}

func (d *doctor) checkToken(ctx context.Context, reg ecrhost.Registry) Result {
	if r, skip := d.needs("aws identity " + reg.Host); skip {
		return r
	}
	if reg.Public {
		return Result{Status: Skip, Detail: "ECR Public: not checked (ecrgate creates no repositories there)"}
	}
	c, err := d.clients(ctx, reg)
	if err != nil {
		return Result{Status: Skip, Detail: err.Error()}
	}
	//lint:ignore SA1019 registryIds is deprecated but still names the registry whose proxyEndpoint ECR returns
	out, err := c.ECR.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{RegistryIds: []string{reg.Account}})
	if err != nil {
		detail, fix := d.awsError(reg, "ecr:GetAuthorizationToken", err)
		return Result{Status: Fail, Detail: detail, Fix: fix}
	}
	if len(out.AuthorizationData) == 0 || aws.ToString(out.AuthorizationData[0].AuthorizationToken) == "" {
		return Result{Status: Fail, Detail: "ECR answered GetAuthorizationToken without a token",
			Fix: "check api_endpoint: for this registry: it may point at something that is not ECR"}
	}
	detail := "ECR API reachable; ecr:GetAuthorizationToken works"
	if t := out.AuthorizationData[0].ExpiresAt; t != nil {
		detail += fmt.Sprintf(" (token valid until %s)", t.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return Result{Status: OK, Detail: detail}
}

// checkCreate tells what can be told, without creating anything, about
// whether the identity may create repositories.
func (d *doctor) checkCreate(ctx context.Context, reg ecrhost.Registry) Result {
	if r, skip := d.needs("aws identity " + reg.Host); skip {
		return r
	}
	if reg.Public {
		return Result{Status: Skip, Detail: "ECR Public: ecrgate creates no repositories there"}
	}
	c, err := d.clients(ctx, reg)
	if err != nil {
		return Result{Status: Skip, Detail: err.Error()}
	}
	_, err = c.ECR.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RegistryId: aws.String(reg.Account), MaxResults: aws.Int32(1)})
	if err != nil {
		detail, fix := d.awsError(reg, "ecr:DescribeRepositories", err)
		return Result{Status: Fail, Detail: detail + " (ecrgate looks a repository up before every creation)", Fix: fix}
	}
	who := d.callerARN(reg)
	if who == "" {
		who = "this identity"
	}
	actions := []string{"ecr:CreateRepository"}
	for _, t := range d.cfg.Templates {
		if t.LifecyclePolicy != "" && !slices.Contains(actions, "ecr:PutLifecyclePolicy") {
			actions = append(actions, "ecr:PutLifecyclePolicy")
		}
		if t.RepositoryPolicy != "" && !slices.Contains(actions, "ecr:SetRepositoryPolicy") {
			actions = append(actions, "ecr:SetRepositoryPolicy")
		}
		if len(t.Tags) > 0 && !slices.Contains(actions, "ecr:TagResource") {
			actions = append(actions, "ecr:TagResource")
		}
		if t.Encryption.KMSKey != "" && !slices.Contains(actions, "kms:CreateGrant") {
			actions = append(actions, "kms:DescribeKey", "kms:CreateGrant")
		}
	}
	resource := fmt.Sprintf("arn:%s:ecr:%s:%s:repository/*", partition(reg), reg.Region, reg.Account)
	return Result{Status: Warn,
		Detail: fmt.Sprintf("ecr:DescribeRepositories works; could not verify %s without creating a repository (ECR has no dry run; IAM policy simulation is not attempted), so ecrgate will report AccessDenied naming the identity at the first push of a new repository if it is not allowed",
			strings.Join(actions, ", ")),
		Fix: fmt.Sprintf("make sure %s may call %s on %s (AmazonEC2ContainerRegistryFullAccess does; PowerUser does not allow CreateRepository)",
			who, strings.Join(actions, ", "), resource)}
}

func partition(reg ecrhost.Registry) string {
	if p := string(reg.Partition); p != "" {
		return p
	}
	return "aws"
}

// checkNative reads ECR's CREATE_ON_PUSH creation templates and names those
// that overlap local templates: for names under both, ECR creates the
// repository itself and ecrgate's template is never used.
func (d *doctor) checkNative(ctx context.Context, reg ecrhost.Registry) Result {
	if r, skip := d.needs("aws identity " + reg.Host); skip {
		return r
	}
	if reg.Public {
		return Result{Status: Skip, Detail: "ECR Public has no creation templates"}
	}
	// The ensurer's own view of the templates: what it reads, when it
	// gives up on them, when it carries on without.
	natives, err := d.planner(reg).Natives(ctx, reg.Host)
	cause := err
	var f *repocreate.Failure
	if errors.As(err, &f) {
		cause = f.Err
	}
	switch {
	case f != nil && f.Op == "":
		return Result{Status: Skip, Detail: cause.Error()}
	case err != nil:
		detail, fix := d.awsError(reg, "ecr:DescribeRepositoryCreationTemplates", cause)
		return Result{Status: Fail, Detail: detail + " (a push of a missing repository fails while this fails)", Fix: fix}
	case natives.OtherAccount != "":
		return Result{Status: Skip, Detail: fmt.Sprintf("the identity is in account %s: the creation templates of %s cannot be read from it (ecrgate assumes there are none)", natives.OtherAccount, reg.Account)}
	case natives.Unreadable != nil:
		detail, fix := d.awsError(reg, "ecr:DescribeRepositoryCreationTemplates", natives.Unreadable.Err)
		return Result{Status: Warn, Detail: detail + "; ecrgate then assumes ECR creates nothing on push", Fix: fix}
	}
	var local []string
	for _, t := range d.cfg.Templates {
		local = append(local, t.Prefix)
	}
	// A native template that is the local template of its prefix as
	// `ecrgate templates export` made it gives what ecrgate would: no
	// overlap to warn of.
	exported := map[string]bool{}
	if x, err := repocreate.CompareTemplates(d.cfg, reg.Host, natives.Templates); err == nil {
		for _, et := range x.Templates {
			exported[et.Prefix] = et.Change == repocreate.ChangeUnchanged
		}
	}
	var overlaps, same []string
	prefixes := natives.Prefixes()
	for _, n := range prefixes {
		for _, l := range local {
			switch {
			case n == l && exported[l]:
				same = append(same, fmt.Sprintf("%q", n))
			case overlap(n, l):
				overlaps = append(overlaps, fmt.Sprintf("native %q overlaps local %q", n, l))
			}
		}
	}
	if len(overlaps) > 0 {
		return Result{Status: Warn,
			Detail: strings.Join(overlaps, "; ") + ": ecrgate defers to ECR's CREATE_ON_PUSH templates, so names they cover get ECR's settings, not the local template's",
			Fix:    "remove the overlapping local template, take CREATE_ON_PUSH off the native one (aws ecr update-repository-creation-template --prefix P --applied-for …), or give it the local settings (ecrgate templates export --apply); ecrgate explain NAME shows which applies"}
	}
	if len(prefixes) == 0 {
		return Result{Status: OK, Detail: "no CREATE_ON_PUSH creation templates: ecrgate creates missing repositories from its own templates"}
	}
	if len(same) > 0 {
		return Result{Status: OK, Detail: fmt.Sprintf("CREATE_ON_PUSH templates %s are the local ones as ecrgate templates export makes them: ECR creates those repositories on push, with the same settings (but scan on push, a registry setting)", strings.Join(same, ", "))}
	}
	return Result{Status: OK, Detail: fmt.Sprintf("CREATE_ON_PUSH templates %s overlap no local template", strings.Join(quoteAll(prefixes), ", "))}
}

// planner is the ensurer's planner for reg, asking ECR through the doctor's
// read-only client of reg as the identity the identity check found.
func (d *doctor) planner(reg ecrhost.Registry) *repocreate.Planner {
	return repocreate.NewPlanner(repocreate.PlannerOptions{Config: d.cfg,
		Clients: func(ctx context.Context, _ string) (repocreate.ReadECR, string, error) {
			c, err := d.clients(ctx, reg)
			if err != nil {
				return nil, "", err
			}
			return c.ECR, d.callerARN(reg), nil
		}})
}

// overlap reports whether a native and a local template prefix cover some
// name in common: either is ROOT (the fallback), they are equal, or one is
// under the other.
func overlap(native, local string) bool {
	n, l := strings.TrimSuffix(native, "/"), strings.TrimSuffix(local, "/")
	if n == config.RootPrefix || l == config.RootPrefix || n == l {
		return true
	}
	return strings.HasPrefix(n, l+"/") || strings.HasPrefix(l, n+"/")
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
