package repocreate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/config"
)

// What the proxy asks before it mounts a shared layer instead of letting
// a pusher upload it (#16): is mounting on and where may it look
// (configuration), does the registry mount at all (its BLOB_MOUNTING
// account setting), and do two repositories have the same encryption (ECR
// mounts only between those). The answers from ECR are remembered, since
// a push asks them once per layer.

// mountFactsTTL is how long the setting and the encryption of existing
// repositories are remembered. A repository found missing is not: the
// push that asked is about to create it, and then it is a source too.
const mountFactsTTL = 5 * time.Minute

// accountSettings is the part of the ECR API that reads account settings;
// *ecr.Client has it.
type accountSettings interface {
	GetAccountSetting(ctx context.Context, in *ecr.GetAccountSettingInput, optFns ...func(*ecr.Options)) (*ecr.GetAccountSettingOutput, error)
}

var _ accountSettings = (*ecr.Client)(nil)

// mountFacts are the remembered answers of one Ensurer.
type mountFacts struct {
	mu       sync.Mutex
	settings map[string]fact[bool]           // registry -> BLOB_MOUNTING is ENABLED
	repos    map[string]fact[RepoEncryption] // registry/repository -> its encryption
}

type fact[T any] struct {
	v       T
	expires time.Time
}

// RepoEncryption is a repository's encryption at rest, as ECR compares it
// for a mount; for a missing repository, what ecrgate would create it with.
type RepoEncryption struct {
	Exists bool
	Type   string // AES256, KMS, KMS_DSSE
	KMSKey string // "" for AES256 or the AWS-managed key
}

func (r RepoEncryption) String() string {
	if r.KMSKey == "" {
		return r.Type
	}
	return r.Type + ":" + r.KMSKey
}

// MountFrom says whether mount_shared_layers is on and which repositories
// the template of repository names in mount_from (MountSources).
func (e *Ensurer) MountFrom(repository string) (enabled bool, from []string) {
	return MountSources(e.cfg, repository)
}

// MountSources says whether cfg's mount_shared_layers is on and which
// repositories the template of repository names in mount_from: what the
// proxy asks, and what explain shows.
func MountSources(cfg *config.Config, repository string) (enabled bool, from []string) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	if !cfg.MountShared() {
		return false, nil
	}
	return true, cfg.TemplateFor(repository).MountFrom
}

// BlobMounting reports whether registry's BLOB_MOUNTING account setting is
// ENABLED (GetAccountSetting with ecrgate's identity), remembered for a
// few minutes. Any failure counts as disabled, remembered as long: a
// registry whose setting ecrgate cannot read gets plain uploads.
func (e *Ensurer) BlobMounting(ctx context.Context, registry string) (bool, error) {
	reg := normRegistry(registry)
	now := e.now()
	e.mounts.mu.Lock()
	if f, ok := e.mounts.settings[reg]; ok && now.Before(f.expires) {
		e.mounts.mu.Unlock()
		return f.v, nil
	}
	e.mounts.mu.Unlock()
	on, err := e.blobMounting(ctx, reg)
	e.mounts.mu.Lock()
	if e.mounts.settings == nil {
		e.mounts.settings = map[string]fact[bool]{}
	}
	e.mounts.settings[reg] = fact[bool]{v: on, expires: now.Add(mountFactsTTL)}
	e.mounts.mu.Unlock()
	if err != nil {
		e.log.Warn("cannot read the registry's BLOB_MOUNTING setting; shared layers are uploaded, not mounted", "registry", reg, "error", err)
	}
	return on, err
}

func (e *Ensurer) blobMounting(ctx context.Context, registry string) (bool, error) {
	client, _, err := e.clients(ctx, registry)
	if err != nil {
		return false, err
	}
	as, ok := client.(accountSettings)
	if !ok {
		return false, errors.New("the ECR client cannot read account settings")
	}
	out, err := as.GetAccountSetting(ctx, &ecr.GetAccountSettingInput{Name: aws.String("BLOB_MOUNTING")})
	if err != nil {
		return false, fmt.Errorf("GetAccountSetting BLOB_MOUNTING: %w", err)
	}
	return strings.EqualFold(aws.ToString(out.Value), "ENABLED"), nil
}

// Encryption returns repository's encryption (DescribeRepositories),
// remembered for a few minutes; for a repository that does not exist, the
// encryption of the template ecrgate would create it from, Exists false.
func (e *Ensurer) Encryption(ctx context.Context, registry, repository string) (RepoEncryption, error) {
	reg := normRegistry(registry)
	key := reg + "/" + repository
	now := e.now()
	e.mounts.mu.Lock()
	if f, ok := e.mounts.repos[key]; ok && now.Before(f.expires) {
		e.mounts.mu.Unlock()
		return f.v, nil
	}
	e.mounts.mu.Unlock()
	enc, err := e.describeEncryption(ctx, reg, repository)
	if err != nil {
		return RepoEncryption{}, err
	}
	if !enc.Exists {
		return enc, nil
	}
	e.mounts.mu.Lock()
	if e.mounts.repos == nil || len(e.mounts.repos) >= 4096 {
		e.mounts.repos = map[string]fact[RepoEncryption]{}
	}
	e.mounts.repos[key] = fact[RepoEncryption]{v: enc, expires: now.Add(mountFactsTTL)}
	e.mounts.mu.Unlock()
	return enc, nil
}

func (e *Ensurer) describeEncryption(ctx context.Context, registry, repository string) (RepoEncryption, error) {
	client, _, err := e.clients(ctx, registry)
	if err != nil {
		return RepoEncryption{}, err
	}
	p, err := decide(e.cfg, registry, repository)
	if err != nil {
		return RepoEncryption{}, err
	}
	out, err := client.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RegistryId: p.Input.RegistryId, RepositoryNames: []string{repository}})
	var nf *types.RepositoryNotFoundException
	switch {
	case errors.As(err, &nf):
		t := p.Template
		return RepoEncryption{Type: t.Encryption.Type, KMSKey: t.Encryption.KMSKey}, nil
	case err != nil:
		return RepoEncryption{}, fmt.Errorf("DescribeRepositories %s: %w", repository, err)
	case len(out.Repositories) == 0:
		return RepoEncryption{}, fmt.Errorf("DescribeRepositories %s: no repository in the answer", repository)
	}
	enc := RepoEncryption{Exists: true, Type: config.EncryptionAES256}
	if c := out.Repositories[0].EncryptionConfiguration; c != nil {
		enc.Type, enc.KMSKey = string(c.EncryptionType), aws.ToString(c.KmsKey)
	}
	return enc, nil
}

// MountRecord is one layer ecrgate mounted (or copied) into a repository
// instead of letting the pusher upload it, for the audit log.
type MountRecord struct {
	Registry, Repository string
	Digest               string
	From                 string // the source repository
	Size                 int64
	How                  string // "mount" or "copy"
}

// AuditMount writes r to the audit log, naming the Caller in ctx.
func (e *Ensurer) AuditMount(ctx context.Context, r MountRecord) {
	caller, _ := CallerFrom(ctx)
	e.writeAudit(e.log, auditRecord{Registry: normRegistry(r.Registry), Repository: r.Repository, Client: caller.Addr, Token: caller.Token,
		Mount: &auditMount{Digest: r.Digest, From: r.From, Size: r.Size, How: r.How}})
}
