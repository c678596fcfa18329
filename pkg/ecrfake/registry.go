package ecrfake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/ecrgate/ecrgate/pkg/distpath"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/ecrname"
	"github.com/ecrgate/ecrgate/pkg/regerr"
)

// sharedDriverName is a storage driver that hands distribution's App a driver
// the emulator created itself, so the emulator can also read tags and delete
// repositories in the same storage.
const sharedDriverName = "ecrfake-shared"

var sharedDrivers sync.Map // id -> storagedriver.StorageDriver

type sharedDriverFactory struct{}

func (sharedDriverFactory) Create(_ context.Context, p map[string]any) (storagedriver.StorageDriver, error) {
	id, _ := p["id"].(string)
	d, ok := sharedDrivers.Load(id)
	if !ok {
		return nil, fmt.Errorf("ecrfake: no storage driver %q", id)
	}
	return d.(storagedriver.StorageDriver), nil
}

func init() {
	factory.Register(sharedDriverName, sharedDriverFactory{})
	// distribution logs every request (each 404 of a blob probe as an
	// error) through logrus' standard logger. The emulator logs requests
	// itself, through slog, so distribution's lines are dropped.
	logrus.SetOutput(io.Discard)
}

// dataRegistry is the distribution registry serving one account in one region.
type dataRegistry struct {
	id     string
	app    *handlers.App
	driver storagedriver.StorageDriver
	ns     distribution.Namespace
}

type dataPlane struct {
	e     *Emulator
	mu    sync.Mutex
	regs  map[string]*dataRegistry
	locks sync.Map // account/region/name -> *sync.Mutex, serialises immutable-tag checks
	refs  referrerIndex
	link  uploadLink // upload bytes read, and Options.UploadBandwidth
}

func newDataPlane(e *Emulator) *dataPlane {
	return &dataPlane{e: e, regs: map[string]*dataRegistry{}}
}

func (d *dataPlane) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for k, r := range d.regs {
		errs = append(errs, r.app.Shutdown())
		sharedDrivers.Delete(r.id)
		delete(d.regs, k)
	}
	return errors.Join(errs...)
}

// registry returns (creating on first use) the registry for account/region.
func (d *dataPlane) registry(account, region string) (*dataRegistry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := registryKey(account, region)
	if r := d.regs[key]; r != nil {
		return r, nil
	}
	var drv storagedriver.StorageDriver
	if dir := d.e.opts.StorageDir; dir != "" {
		drv = filesystem.New(filesystem.DriverParameters{RootDirectory: path.Join(dir, "registry", account, region), MaxThreads: 100})
	} else {
		drv = newMemDriver()
	}
	id := fmt.Sprintf("%p/%s", d, key)
	sharedDrivers.Store(id, drv)
	cfg := &configuration.Configuration{Version: "0.1"}
	cfg.Storage = configuration.Storage{
		sharedDriverName: configuration.Parameters{"id": id},
		"delete":         configuration.Parameters{"enabled": true},
		"maintenance":    configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		"redirect":       configuration.Parameters{"disable": true},
	}
	cfg.HTTP.Secret = randomHex(32)
	// Foreign (non-distributable) layers, as in Windows base images, carry
	// URLs; ECR accepts such manifests, distribution refuses them by default.
	cfg.Validation.Manifests.URLs.Allow = []string{"^https?://"}
	app := handlers.NewApp(context.Background(), cfg)
	ns, err := storage.NewRegistry(context.Background(), drv, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("open registry storage for %s: %w", key, err)
	}
	r := &dataRegistry{id: id, app: app, driver: drv, ns: ns}
	d.regs[key] = r
	return r, nil
}

// route is what a registry request does.
type route struct {
	op    string
	name  string
	ref   string // tag or digest for manifests and blobs
	write bool   // a push: may create the repository from a CREATE_ON_PUSH template
}

func parseRoute(r *http.Request) route {
	rt := distpath.Parse(r.Method, r.URL.Path)
	// Only pushes that start something create: an upload start or a manifest
	// PUT, as ECR's create-on-push does.
	return route{op: string(rt.Op), name: rt.Name, ref: rt.Ref, write: rt.Creates()}
}

// registryForHost picks the registry by Host: an ECR host names its account
// and region; anything else (127.0.0.1:port) is the default registry.
func (e *Emulator) registryForHost(host string) (account, region string) {
	if reg, err := ecrhost.Parse(host); err == nil && !reg.Public {
		return reg.Account, reg.Region
	}
	return e.opts.Accounts[0], e.opts.Region
}

func (d *dataPlane) serve(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r)
	if !d.e.applyFault(w, r, rt.op, faultRegistry) {
		return
	}
	account, region := d.e.registryForHost(r.Host)
	tok, ok := d.authorize(w, r, account, region, rt)
	if !ok {
		return
	}
	reg, err := d.registry(account, region)
	if err != nil {
		serveRegistryError(w, errcode.ErrorCodeUnknown.WithMessage(err.Error()))
		return
	}
	w = &ecrResponseWriter{ResponseWriter: w}
	if rt.name == "" {
		if rt.op == OpCatalog { // ECR has no catalog; repositories are listed with DescribeRepositories
			serveRegistryError(w, errcode.ErrorCodeUnsupported.WithMessage("The catalog API is not supported; use DescribeRepositories"))
			return
		}
		reg.app.ServeHTTP(w, r)
		return
	}
	if err := ecrname.ValidateRepository(rt.name); err != nil {
		var ne *ecrname.Error
		errors.As(err, &ne)
		serveRegistryError(w, errcode.ErrorCodeNameInvalid.WithMessage(fmt.Sprintf("Invalid repository name '%s': %s", rt.name, ne.Reason)))
		return
	}
	if dg := r.URL.Query().Get("digest"); dg != "" && !strings.HasPrefix(dg, "sha256:") {
		// ECR computes and accepts sha256 digests only.
		serveRegistryError(w, errcode.ErrorCodeDigestInvalid.WithMessage(fmt.Sprintf("digest %q: only sha256 digests are supported", dg)))
		return
	}
	repo, err := d.lookupOrCreateOnPush(account, region, rt)
	if err != nil {
		serveRegistryError(w, err)
		return
	}
	switch rt.op {
	case OpManifestPut:
		d.putManifest(w, r, reg, account, region, repo, rt)
		return
	case OpReferrers: // distribution v3.1.2 has no referrers API
		d.serveReferrers(w, r, reg, account, region, rt)
		return
	case OpUploadStart:
		d.gateMount(r, account, region, repo, tok, rt)
		d.throughLink(r)
	case OpUploadChunk, OpUploadComplete:
		d.throughLink(r)
	case OpManifestGet:
		w = d.pullRecorder(w, r, account, region, rt, tok.Principal)
	case OpManifestDelete:
		w = d.referrerDeleteHook(w, account, region, rt)
	case OpBlobGet:
		if d.redirectBlob(w, r, reg, account, region, rt) {
			return
		}
	}
	reg.app.ServeHTTP(w, r)
}

// lookupOrCreateOnPush returns the repository, creating it from a
// CREATE_ON_PUSH template when the request is a push and a template covers it.
func (d *dataPlane) lookupOrCreateOnPush(account, region string, rt route) (*repository, error) {
	st := d.e.st
	st.mu.Lock()
	defer st.mu.Unlock()
	regState := st.registry(account, region)
	if r := regState.Repositories[rt.name]; r != nil {
		return r, nil
	}
	if rt.write {
		if t := regState.matchTemplate(rt.name, appliedForCreateOnPush); t != nil {
			r := repositoryFromTemplate(regState, t, rt.name, d.e.opts.Now())
			if err := d.e.addRepository(regState, r); err != nil {
				return nil, errcode.ErrorCodeUnknown.WithMessage("create-on-push: " + err.Error())
			}
			d.e.log.Info("repository created on push", "registry", registryHost(account, region), "repository", rt.name, "template", t.Prefix)
			return r, nil
		}
	}
	return nil, errcode.ErrorCodeNameUnknown.WithMessage(fmt.Sprintf(
		"The repository with name '%s' does not exist in the registry with id '%s'", rt.name, account))
}

// putManifest enforces ECR's manifest rules before distribution stores it:
// the 4 MiB limit, tag syntax, and immutable tags; and records a manifest
// with a subject in the referrers index (answering with OCI-Subject).
func (d *dataPlane) putManifest(w http.ResponseWriter, r *http.Request, reg *dataRegistry, account, region string, repo *repository, rt route) {
	if r.ContentLength > MaxManifestSize {
		serveRegistryError(w, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("manifest size %d exceeds the limit of %d bytes", r.ContentLength, MaxManifestSize)))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
	if err != nil {
		serveRegistryError(w, errcode.ErrorCodeManifestInvalid.WithMessage("read manifest: "+err.Error()))
		return
	}
	if len(body) > MaxManifestSize {
		serveRegistryError(w, errcode.ErrorCodeManifestInvalid.WithMessage(fmt.Sprintf("manifest exceeds the limit of %d bytes", MaxManifestSize)))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	tag := ""
	if _, err := digest.Parse(rt.ref); err != nil {
		tag = rt.ref
		if err := ecrname.ValidateTag(tag); err != nil {
			var ne *ecrname.Error
			errors.As(err, &ne)
			serveRegistryError(w, errcode.ErrorCodeTagInvalid.WithMessage(fmt.Sprintf("Invalid tag '%s': %s", tag, ne.Reason)))
			return
		}
	}
	d.e.st.mu.Lock()
	locked := tag != "" && repo.tagImmutable(tag)
	d.e.st.mu.Unlock()
	if locked {
		mu, _ := d.locks.LoadOrStore(registryKey(account, region)+"/"+rt.name, &sync.Mutex{})
		mu.(*sync.Mutex).Lock()
		defer mu.(*sync.Mutex).Unlock()
		cur, err := d.tagDigest(r.Context(), reg, rt.name, tag)
		if err != nil {
			serveRegistryError(w, errcode.ErrorCodeUnknown.WithMessage(err.Error()))
			return
		}
		if cur != "" && cur != digest.FromBytes(body) {
			serveRegistryError(w, errcode.ErrorCodeTagInvalid.WithMessage(fmt.Sprintf(
				"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the tag is immutable.", tag, rt.name)))
			return
		}
	}
	w = d.referrerPutHook(w, account, region, rt.name, r.Header.Get("Content-Type"), body)
	w = d.e.scanOnPushHook(w, account, region, rt.name, body)
	reg.app.ServeHTTP(w, r)
}

func (d *dataPlane) repo(ctx context.Context, reg *dataRegistry, name string) (distribution.Repository, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, fmt.Errorf("repository name %q: %w", name, err)
	}
	return reg.ns.Repository(ctx, named)
}

// tagDigest returns the digest tag points at, or "" if the tag does not exist.
func (d *dataPlane) tagDigest(ctx context.Context, reg *dataRegistry, name, tag string) (digest.Digest, error) {
	repo, err := d.repo(ctx, reg, name)
	if err != nil {
		return "", err
	}
	desc, err := repo.Tags(ctx).Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	if errors.As(err, &unknown) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up tag %s:%s: %w", name, tag, err)
	}
	return desc.Digest, nil
}

type imageTag struct{ Tag, Digest string }

// tags lists the tags of a repository with their digests.
func (d *dataPlane) tags(ctx context.Context, account, region, name string) ([]imageTag, error) {
	reg, err := d.registry(account, region)
	if err != nil {
		return nil, err
	}
	repo, err := d.repo(ctx, reg, name)
	if err != nil {
		return nil, err
	}
	all, err := repo.Tags(ctx).All(ctx)
	var notFound storagedriver.PathNotFoundError
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &notFound) || errors.As(err, &unknown) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", name, err)
	}
	sort.Strings(all)
	var out []imageTag
	for _, t := range all {
		dg, err := d.tagDigest(ctx, reg, name, t)
		if err != nil {
			return nil, err
		}
		out = append(out, imageTag{Tag: t, Digest: dg.String()})
	}
	return out, nil
}

// deleteRepository removes a repository's images from storage. Only the
// repository's own directories go: "team" must not take "team/app" with it.
func (d *dataPlane) deleteRepository(ctx context.Context, account, region, name string) error {
	reg, err := d.registry(account, region)
	if err != nil {
		return err
	}
	for _, sub := range []string{"_manifests", "_layers", "_uploads"} {
		err := reg.driver.Delete(ctx, path.Join("/docker/registry/v2/repositories", name, sub))
		var notFound storagedriver.PathNotFoundError
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("delete repository %s storage: %w", name, err)
		}
	}
	d.refs.forget(referrerKey(account, region, name))
	d.e.dropUploads(account, region, name)
	return nil
}

// authorize checks ECR's Basic auth (user AWS, password from
// GetAuthorizationToken) and that the token's principal may perform the
// request's action on the repository (authorizeECR). It returns the token.
func (d *dataPlane) authorize(w http.ResponseWriter, r *http.Request, account, region string, rt route) (authToken, bool) {
	user, pass, ok := r.BasicAuth()
	d.e.st.mu.Lock()
	tok := d.e.st.Tokens[pass]
	var t authToken
	if tok != nil {
		t = *tok
	}
	d.e.st.mu.Unlock()
	if !ok || user != "AWS" || tok == nil {
		// ECR answers a missing or unknown credential with a Basic challenge
		// and a plain-text body.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="https://%s/",service="ecr.amazonaws.com"`, registryHost(account, region)))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "Not Authorized\n")
		return t, false
	}
	if d.e.opts.Now().After(t.Expires) {
		serveRegistryError(w, errcode.ErrorCodeDenied.WithMessage("Your authorization token has expired. Reauthenticate and try again."))
		return t, false
	}
	// A token is not tied to one registry: what it may do in this one
	// depends on the registry's and the repository's policies. An ECR
	// Public token opens no private registry; the version check (/v2/)
	// only needs a valid token.
	action := "ecr:" + ecrActionFor(rt)
	if t.Account == "public" || (rt.name != "" && !d.e.authorizeECR(t.Principal, t.Account, account, region, rt.name, action)) {
		resource := "arn:aws:ecr:" + region + ":" + account + ":repository/" + rt.name
		serveRegistryError(w, errcode.ErrorCodeDenied.WithMessage(fmt.Sprintf(
			"User: %s is not authorized to perform: %s on resource: %s", t.Principal, action, resource)))
		return t, false
	}
	return t, true
}

// gateMount lets distribution mount a blob from another repository
// (POST …/blobs/uploads/?mount=<digest>&from=<repo>) only as ECR does:
// BLOB_MOUNTING is ENABLED in the registry, the source repository exists in
// the same registry with identical encryption settings, and the caller may
// read layers from it (ecr:GetDownloadUrlForLayer). Otherwise it strips the
// mount from the request, so distribution opens an upload session (202), as
// ECR answers when it does not mount.
func (d *dataPlane) gateMount(r *http.Request, account, region string, target *repository, tok authToken, rt route) {
	q := r.URL.Query()
	if !q.Has("mount") && !q.Has("from") {
		return
	}
	from := q.Get("from")
	d.e.st.mu.Lock()
	reg := d.e.st.registry(account, region)
	enabled := reg.setting(settingBlobMounting) == "ENABLED"
	src := reg.Repositories[from]
	sameEncryption := src != nil && src.Encryption == target.Encryption
	d.e.st.mu.Unlock()
	if enabled && sameEncryption && from != rt.name &&
		d.e.authorizeECR(tok.Principal, tok.Account, account, region, from, "ecr:GetDownloadUrlForLayer") {
		return
	}
	q.Del("mount")
	q.Del("from")
	r.URL.RawQuery = q.Encode()
}

// throughLink makes the upload handler read r's body through the
// emulator's upload link: counted, and limited to Options.UploadBandwidth.
func (d *dataPlane) throughLink(r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &linkReader{ctx: r.Context(), r: r.Body, link: &d.link}
	}
}

// ecrActionFor is the IAM action ECR checks for a registry request.
func ecrActionFor(rt route) string {
	switch rt.op {
	case OpUploadStart, OpUploadStatus, OpUploadCancel:
		return "InitiateLayerUpload"
	case OpUploadChunk:
		return "UploadLayerPart"
	case OpUploadComplete:
		return "CompleteLayerUpload"
	case OpManifestPut:
		return "PutImage"
	case OpManifestDelete:
		return "BatchDeleteImage"
	case OpBlobHead:
		return "BatchCheckLayerAvailability"
	case OpBlobGet:
		return "GetDownloadUrlForLayer"
	default:
		return "BatchGetImage"
	}
}

func serveRegistryError(w http.ResponseWriter, err error) { regerr.Serve(w, err) }

// ecrResponseWriter removes what distribution sends and ECR does not:
// Docker-Upload-UUID (ECR's upload Location is the only handle).
type ecrResponseWriter struct {
	http.ResponseWriter
}

func (w *ecrResponseWriter) WriteHeader(code int) {
	w.Header().Del("Docker-Upload-Uuid")
	w.ResponseWriter.WriteHeader(code)
}

func (w *ecrResponseWriter) Write(b []byte) (int, error) {
	w.Header().Del("Docker-Upload-Uuid")
	return w.ResponseWriter.Write(b)
}

func (w *ecrResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *ecrResponseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

var (
	errTooManyRequests = errcode.ErrorCodeTooManyRequests.WithMessage("Rate exceeded")
	errInjected500     = errcode.ErrorCodeUnknown.WithMessage("Internal service error (injected by ecrfake)")
)
