package ecrfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ecrgate/ecrgate/pkg/lifecycle"
)

// Lifecycle policies that run: StartLifecyclePolicyPreview and
// GetLifecyclePolicyPreview evaluate a policy on a repository's images with
// pkg/lifecycle, and ApplyLifecyclePolicies (POST /_ecrfake/lifecycle)
// expires what the same evaluation selects, through BatchDeleteImage's own
// deletion path. Time is the emulator's clock (Options.Now); an image's push
// time is when its manifest was stored.
//
// Not evaluated (accepted, validated, and claiming the images they select so
// that later rules cannot expire them, but marking nothing): countType
// sinceImagePulled and sinceImageTransitioned, action transition. A preview
// completes at once: StartLifecyclePolicyPreview answers IN_PROGRESS as ECR
// does, every GetLifecyclePolicyPreview after it COMPLETE.

const (
	previewInProgress = "IN_PROGRESS"
	previewComplete   = "COMPLETE"
	actionExpire      = "EXPIRE"
	storageStandard   = "STANDARD"
)

// lifecyclePreview is the last StartLifecyclePolicyPreview of a repository.
type lifecyclePreview struct {
	PolicyText string          `json:"policyText"`
	StartedAt  time.Time       `json:"startedAt"`
	Results    []previewResult `json:"results"`
}

// previewResult is one image the previewed policy expires.
type previewResult struct {
	Digest       string    `json:"imageDigest"`
	Tags         []string  `json:"imageTags,omitempty"`
	PushedAt     time.Time `json:"imagePushedAt"`
	RulePriority int       `json:"appliedRulePriority"`
}

// parseLifecyclePolicy parses a policy text, answering a bad one with the
// InvalidParameterException ECR gives.
func parseLifecyclePolicy(text string) (lifecycle.Policy, error) {
	p, err := lifecycle.Parse(text)
	if err != nil {
		return lifecycle.Policy{}, errInvalidParam("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: %s'", err)
	}
	return p, nil
}

// lifecycleImages turns stored images into what pkg/lifecycle evaluates.
func lifecycleImages(imgs []image) []lifecycle.Image {
	out := make([]lifecycle.Image, 0, len(imgs))
	for _, img := range imgs {
		li := lifecycle.Image{Digest: img.Digest.String(), Tags: img.Tags, PushedAt: img.PushedAt}
		for _, c := range img.Children {
			li.Children = append(li.Children, c.String())
		}
		out = append(out, li)
	}
	return out
}

func errLifecyclePolicyNotFound(name, account string) *awsError {
	return &awsError{http.StatusBadRequest, "LifecyclePolicyNotFoundException", fmt.Sprintf(
		"Lifecycle policy does not exist for the repository with name '%s' in the registry with id '%s'", name, account)}
}

// --- StartLifecyclePolicyPreview ---------------------------------------------

func opStartLifecyclePolicyPreview(c *call) (any, error) {
	var in struct {
		repoRef
		LifecyclePolicyText string `json:"lifecyclePolicyText"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.LifecyclePolicyText != "" {
		if err := validateLifecyclePolicy(in.LifecyclePolicyText); err != nil {
			return nil, err
		}
	}
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(in.repoRef)
	text := in.LifecyclePolicyText
	if err == nil && text == "" {
		text = r.LifecyclePolicy
	}
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if text == "" {
		return nil, errLifecyclePolicyNotFound(r.Name, reg.Account)
	}
	policy, err := parseLifecyclePolicy(text)
	if err != nil {
		return nil, err
	}
	imgs, err := c.e.data.images(c.ctx, reg.Account, reg.Region, r.Name)
	if err != nil {
		return nil, err
	}
	now := c.e.opts.Now()
	preview := &lifecyclePreview{PolicyText: text, StartedAt: now, Results: []previewResult{}}
	for _, res := range lifecycle.Evaluate(policy, lifecycleImages(imgs), now) {
		preview.Results = append(preview.Results, previewResult{Digest: res.Image.Digest, Tags: res.Image.Tags,
			PushedAt: res.Image.PushedAt, RulePriority: res.RulePriority})
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	if reg.Repositories[r.Name] != r {
		return nil, errRepoNotFound(r.Name, reg.Account)
	}
	r.LifecyclePreview = preview
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	return map[string]any{"registryId": reg.Account, "repositoryName": r.Name,
		"lifecyclePolicyText": text, "status": previewInProgress}, nil
}

// --- GetLifecyclePolicyPreview -----------------------------------------------

type previewResultOut struct {
	ImageTags     []string `json:"imageTags,omitempty"`
	ImageDigest   string   `json:"imageDigest"`
	ImagePushedAt float64  `json:"imagePushedAt"`
	Action        struct {
		Type string `json:"type"`
	} `json:"action"`
	AppliedRulePriority int    `json:"appliedRulePriority"`
	StorageClass        string `json:"storageClass"`
}

func opGetLifecyclePolicyPreview(c *call) (any, error) {
	var in struct {
		repoRef
		ImageIDs   []imageID    `json:"imageIds"`
		NextToken  string       `json:"nextToken"`
		MaxResults int          `json:"maxResults"`
		Filter     *imageFilter `json:"filter"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkMaxResults(in.MaxResults, 100); err != nil {
		return nil, err
	}
	if _, err := in.Filter.keep(&image{}); err != nil {
		return nil, err
	}
	if len(in.ImageIDs) > 0 && (in.MaxResults != 0 || in.NextToken != "") {
		return nil, errInvalidParam("Invalid parameter: cannot specify maxResults or nextToken together with imageIds")
	}
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(in.repoRef)
	var preview *lifecyclePreview
	if err == nil {
		preview = r.LifecyclePreview
	}
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if preview == nil {
		return nil, &awsError{http.StatusBadRequest, "LifecyclePolicyPreviewNotFoundException", fmt.Sprintf(
			"There is no lifecycle policy preview for the repository with name '%s' in the registry with id '%s'", r.Name, reg.Account)}
	}
	// Results as images, so that the filter and imageIds resolve as
	// DescribeImages resolves them.
	results := preview.Results
	var imgs []image
	for _, res := range results {
		imgs = append(imgs, image{Digest: digest.Digest(res.Digest), Tags: res.Tags})
	}
	keep := map[string]bool{}
	if len(in.ImageIDs) > 0 {
		for _, id := range in.ImageIDs {
			img, code, reason := resolve(imgs, id)
			switch code {
			case "":
				keep[img.Digest.String()] = true
			case "ImageNotFound", "ImageTagDoesNotMatchDigest":
				// not expired by the policy: not in the results
			default:
				return nil, errInvalidParam("%s", reason)
			}
		}
	}
	byDigest := map[string]previewResult{}
	var keys []string
	for i, res := range results {
		if ok, _ := in.Filter.keep(&imgs[i]); !ok {
			continue
		}
		if len(in.ImageIDs) > 0 && !keep[res.Digest] {
			continue
		}
		keys = append(keys, res.Digest)
		byDigest[res.Digest] = res
	}
	sort.Strings(keys)
	page := keys
	next := ""
	if len(in.ImageIDs) == 0 {
		if page, next, err = paginate(keys, in.NextToken, in.MaxResults); err != nil {
			return nil, err
		}
	}
	out := []previewResultOut{}
	for _, k := range page {
		res := byDigest[k]
		o := previewResultOut{ImageTags: res.Tags, ImageDigest: res.Digest, ImagePushedAt: epoch(res.PushedAt),
			AppliedRulePriority: res.RulePriority, StorageClass: storageStandard}
		o.Action.Type = actionExpire
		out = append(out, o)
	}
	resp := map[string]any{
		"registryId": reg.Account, "repositoryName": r.Name, "lifecyclePolicyText": preview.PolicyText,
		"status": previewComplete, "previewResults": out,
		"summary": map[string]any{"expiringImageTotalCount": len(results)},
	}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}

// --- applying ----------------------------------------------------------------

// ExpiredImage is an image ApplyLifecyclePolicies expired.
type ExpiredImage struct {
	Account      string    `json:"registryId"`
	Region       string    `json:"region"`
	Repository   string    `json:"repositoryName"`
	Digest       string    `json:"imageDigest"`
	Tags         []string  `json:"imageTags,omitempty"`
	PushedAt     time.Time `json:"imagePushedAt"`
	RulePriority int       `json:"appliedRulePriority"`
}

// ApplyLifecyclePolicies runs the lifecycle policy of repository repo (""
// = every repository that has one) in the registry of account and region
// ("" = the defaults) now, by the emulator's clock, and expires the images
// it selects as ECR would, deleting them as BatchDeleteImage does. It returns
// what it expired, per repository in name order, oldest image first. A named
// repository without a policy is LifecyclePolicyNotFoundException.
func (e *Emulator) ApplyLifecyclePolicies(ctx context.Context, account, region, repo string) ([]ExpiredImage, error) {
	if account == "" {
		account = e.Account()
	}
	if region == "" {
		region = e.opts.Region
	}
	if !e.knownAccount(account) {
		return nil, errInvalidParam("account %q is not served by this emulator", account)
	}
	type job struct{ name, policy string }
	var jobs []job
	e.st.mu.Lock()
	reg := e.st.Registries[registryKey(account, region)]
	switch {
	case repo != "":
		var r *repository
		if reg != nil {
			r = reg.Repositories[repo]
		}
		if r == nil {
			e.st.mu.Unlock()
			return nil, errRepoNotFound(repo, account)
		}
		if r.LifecyclePolicy == "" {
			e.st.mu.Unlock()
			return nil, errLifecyclePolicyNotFound(repo, account)
		}
		jobs = append(jobs, job{r.Name, r.LifecyclePolicy})
	case reg != nil:
		for _, n := range reg.sortedRepoNames() {
			if p := reg.Repositories[n].LifecyclePolicy; p != "" {
				jobs = append(jobs, job{n, p})
			}
		}
	}
	e.st.mu.Unlock()
	expired := []ExpiredImage{}
	for _, j := range jobs {
		got, err := e.applyLifecyclePolicy(ctx, account, region, j.name, j.policy)
		expired = append(expired, got...)
		if err != nil {
			return expired, fmt.Errorf("lifecycle policy of %s: %w", j.name, err)
		}
	}
	return expired, nil
}

func (e *Emulator) applyLifecyclePolicy(ctx context.Context, account, region, name, text string) ([]ExpiredImage, error) {
	policy, err := parseLifecyclePolicy(text)
	if err != nil {
		return nil, err
	}
	unlock := e.data.lockRepo(account, region, name)
	defer unlock()
	imgs, err := e.data.images(ctx, account, region, name)
	if err != nil {
		return nil, err
	}
	results := lifecycle.Evaluate(policy, lifecycleImages(imgs), e.opts.Now())
	byDigest := map[string]lifecycle.Result{}
	var pending []imageID
	for _, res := range results {
		byDigest[res.Image.Digest] = res
		pending = append(pending, imageID{ImageDigest: res.Image.Digest})
	}
	var expired []ExpiredImage
	seen := map[string]bool{}
	// An index goes before the manifests it lists, which BatchDeleteImage
	// refuses to delete while it exists: retry those while others go.
	for len(pending) > 0 {
		deleted, failures, err := e.data.batchDelete(ctx, account, region, name, imgs, pending)
		if err != nil {
			return expired, err
		}
		for _, id := range deleted {
			if seen[id.ImageDigest] {
				continue // one entry per image, not one per tag
			}
			seen[id.ImageDigest] = true
			res := byDigest[id.ImageDigest]
			expired = append(expired, ExpiredImage{Account: account, Region: region, Repository: name,
				Digest: id.ImageDigest, Tags: res.Image.Tags, PushedAt: res.Image.PushedAt, RulePriority: res.RulePriority})
		}
		var retry []imageID
		var problems []string
		for _, f := range failures {
			if f.FailureCode == "ImageReferencedByManifestList" && len(deleted) > 0 {
				retry = append(retry, f.ImageID)
				continue
			}
			problems = append(problems, f.ImageID.ImageDigest+": "+f.FailureCode+": "+f.FailureReason)
		}
		if len(problems) > 0 {
			return expired, errors.New("not expired: " + strings.Join(problems, "; "))
		}
		pending = retry
	}
	sort.SliceStable(expired, func(i, j int) bool {
		a, b := byDigest[expired[i].Digest].Image, byDigest[expired[j].Digest].Image
		if !a.PushedAt.Equal(b.PushedAt) {
			return a.PushedAt.Before(b.PushedAt)
		}
		return a.Digest > b.Digest
	})
	return expired, nil
}

// serveApplyLifecycle answers POST /_ecrfake/lifecycle with what
// ApplyLifecyclePolicies expired: {"expired": [...]}. An ECR error (no such
// repository or policy, an invalid policy) is 400 with its name and message.
func (e *Emulator) serveApplyLifecycle(w http.ResponseWriter, r *http.Request, account, region, repo string) {
	expired, err := e.ApplyLifecyclePolicies(r.Context(), account, region, repo)
	if err != nil {
		status := http.StatusInternalServerError
		var ae *awsError
		if errors.As(err, &ae) {
			status = ae.Status
		}
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"expired": expired})
}
