package ecrfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// Image operations of the control plane (DescribeImages, ListImages,
// BatchGetImage, BatchDeleteImage), read from and written to the same
// distribution storage the registry serves.

const (
	tagStatusTagged   = "TAGGED"
	tagStatusUntagged = "UNTAGGED"
	tagStatusAny      = "ANY"
)

// image is one stored manifest with the tags pointing at it.
type image struct {
	Digest    digest.Digest
	MediaType string
	Body      []byte
	Tags      []string
	Size      int64
	PushedAt  time.Time
	Artifact  string          // config media type, ECR's artifactMediaType
	Children  []digest.Digest // the manifests an index lists
}

// imageFields are the parts of a manifest or index that DescribeImages reports.
type imageFields struct {
	MediaType string `json:"mediaType"`
	Config    *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Layers    []struct{ Size int64 } `json:"layers"`
	Manifests []struct {
		Digest digest.Digest `json:"digest"`
		Size   int64         `json:"size"`
	} `json:"manifests"`
}

// images returns every manifest stored in repository name, sorted by digest.
func (d *dataPlane) images(ctx context.Context, account, region, name string) ([]image, error) {
	reg, err := d.registry(account, region)
	if err != nil {
		return nil, err
	}
	repo, err := d.repo(ctx, reg, name)
	if err != nil {
		return nil, err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, fmt.Errorf("manifests of %s: %w", name, err)
	}
	en, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return nil, fmt.Errorf("manifests of %s cannot be enumerated", name)
	}
	var dgs []digest.Digest
	err = en.Enumerate(ctx, func(dg digest.Digest) error {
		dgs = append(dgs, dg)
		return nil
	})
	var notFound storagedriver.PathNotFoundError
	var unknown distribution.ErrRepositoryUnknown
	if err != nil && !errors.As(err, &notFound) && !errors.As(err, &unknown) {
		return nil, fmt.Errorf("list manifests of %s: %w", name, err)
	}
	tags, err := d.tags(ctx, account, region, name)
	if err != nil {
		return nil, err
	}
	byDigest := map[digest.Digest][]string{}
	for _, t := range tags {
		byDigest[digest.Digest(t.Digest)] = append(byDigest[digest.Digest(t.Digest)], t.Tag)
	}
	var out []image
	for _, dg := range dgs {
		m, err := ms.Get(ctx, dg)
		var gone distribution.ErrManifestUnknownRevision
		if errors.As(err, &gone) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read manifest %s@%s: %w", name, dg, err)
		}
		mt, body, err := m.Payload()
		if err != nil {
			return nil, fmt.Errorf("read manifest %s@%s: %w", name, dg, err)
		}
		img := image{Digest: dg, MediaType: mt, Body: body, Tags: byDigest[dg]}
		var f imageFields
		if json.Unmarshal(body, &f) == nil {
			if img.MediaType == "" {
				img.MediaType = f.MediaType
			}
			if f.Config != nil {
				img.Artifact = f.Config.MediaType
			}
			for _, l := range f.Layers {
				img.Size += l.Size
			}
			for _, c := range f.Manifests {
				img.Size += c.Size
				img.Children = append(img.Children, c.Digest)
			}
		}
		link := path.Join("/docker/registry/v2/repositories", name, "_manifests/revisions", dg.Algorithm().String(), dg.Encoded(), "link")
		if fi, err := reg.driver.Stat(ctx, link); err == nil {
			img.PushedAt = fi.ModTime()
		}
		if img.PushedAt.IsZero() {
			img.PushedAt = d.e.opts.Now()
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// imageID is ECR's ImageIdentifier.
type imageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

// String names the id as ECR's messages do.
func (id imageID) String() string {
	q := func(s string) string {
		if s == "" {
			return "'null'"
		}
		return "'" + s + "'"
	}
	return "{imageDigest:" + q(id.ImageDigest) + ", imageTag:" + q(id.ImageTag) + "}"
}

// resolve finds the image id names; failure codes are ECR's.
func resolve(imgs []image, id imageID) (img *image, code, reason string) {
	if id.ImageDigest == "" && id.ImageTag == "" {
		return nil, "MissingDigestAndTag", "Invalid request parameters: both tag and digest cannot be null"
	}
	if id.ImageDigest != "" {
		if _, err := digest.Parse(id.ImageDigest); err != nil {
			return nil, "InvalidImageDigest", "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'"
		}
	}
	for i := range imgs {
		if id.ImageDigest != "" && imgs[i].Digest.String() != id.ImageDigest {
			continue
		}
		if id.ImageTag == "" {
			return &imgs[i], "", ""
		}
		for _, t := range imgs[i].Tags {
			if t == id.ImageTag {
				return &imgs[i], "", ""
			}
		}
	}
	if id.ImageDigest != "" && id.ImageTag != "" {
		for i := range imgs {
			for _, t := range imgs[i].Tags {
				if t == id.ImageTag {
					return nil, "ImageTagDoesNotMatchDigest", "Invalid request parameters: given tag and digest do not match"
				}
			}
		}
	}
	return nil, "ImageNotFound", "Requested image not found"
}

// repoImages looks up the repository of a request and reads its images.
func (c *call) repoImages(ref repoRef) (*registryState, *repository, []image, error) {
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(ref)
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, nil, nil, err
	}
	imgs, err := c.e.data.images(c.ctx, reg.Account, reg.Region, r.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, r, imgs, nil
}

type imageFilter struct {
	TagStatus string `json:"tagStatus"`
}

func (f *imageFilter) keep(img *image) (bool, error) {
	if f == nil {
		return true, nil
	}
	switch f.TagStatus {
	case "", tagStatusAny:
		return true, nil
	case tagStatusTagged:
		return len(img.Tags) > 0, nil
	case tagStatusUntagged:
		return len(img.Tags) == 0, nil
	}
	return false, errInvalidParam("Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'")
}

func checkMaxResults(n int, max int) error {
	if n < 0 || n > max {
		return errInvalidParam("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value less than or equal to %d'", max)
	}
	return nil
}

// --- DescribeImages ----------------------------------------------------------

type imageDetail struct {
	RegistryID             string   `json:"registryId"`
	RepositoryName         string   `json:"repositoryName"`
	ImageDigest            string   `json:"imageDigest"`
	ImageTags              []string `json:"imageTags,omitempty"`
	ImageSizeInBytes       int64    `json:"imageSizeInBytes"`
	ImagePushedAt          float64  `json:"imagePushedAt"`
	ImageManifestMediaType string   `json:"imageManifestMediaType,omitempty"`
	ArtifactMediaType      string   `json:"artifactMediaType,omitempty"`
	LastRecordedPullTime   float64  `json:"lastRecordedPullTime,omitempty"`
	// Set for scanned images (scanning.go).
	ImageScanStatus          *scanStatus  `json:"imageScanStatus,omitempty"`
	ImageScanFindingsSummary *scanSummary `json:"imageScanFindingsSummary,omitempty"`
}

// imageListing is the request DescribeImages and ListImages share: a
// repository, a tagStatus filter and a page.
type imageListing struct {
	repoRef
	Filter     *imageFilter `json:"filter"`
	MaxResults int          `json:"maxResults"`
	NextToken  string       `json:"nextToken"`
}

// check refuses a page size or a filter ECR refuses, before any lookup
// (an empty repository included).
func (l *imageListing) check() error {
	if err := checkMaxResults(l.MaxResults, 1000); err != nil {
		return err
	}
	_, err := l.Filter.keep(&image{})
	return err
}

func opDescribeImages(c *call) (any, error) {
	var in struct {
		imageListing
		ImageIDs []imageID `json:"imageIds"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	if len(in.ImageIDs) > 0 && (in.MaxResults != 0 || in.NextToken != "") {
		return nil, errInvalidParam("Invalid parameter: cannot specify maxResults or nextToken together with imageIds")
	}
	reg, r, imgs, err := c.repoImages(in.repoRef)
	if err != nil {
		return nil, err
	}
	scans := c.e.scanSummaries(r)
	c.e.st.mu.Lock()
	pulled := maps.Clone(r.LastPulled)
	c.e.st.mu.Unlock()
	detail := func(img *image) imageDetail {
		d := imageDetail{RegistryID: reg.Account, RepositoryName: r.Name, ImageDigest: img.Digest.String(),
			ImageTags: img.Tags, ImageSizeInBytes: img.Size, ImagePushedAt: epoch(img.PushedAt),
			ImageManifestMediaType: img.MediaType, ArtifactMediaType: img.Artifact}
		if t, ok := pulled[d.ImageDigest]; ok {
			d.LastRecordedPullTime = epoch(t)
		}
		if s := scans[d.ImageDigest]; s != nil {
			d.ImageScanStatus, d.ImageScanFindingsSummary = &scanStatus{scanComplete, scanCompleteDescription}, s
		}
		return d
	}
	out := []imageDetail{}
	if len(in.ImageIDs) > 0 {
		seen := map[digest.Digest]bool{}
		for _, id := range in.ImageIDs {
			img, code, reason := resolve(imgs, id)
			switch code {
			case "":
			case "ImageNotFound", "ImageTagDoesNotMatchDigest":
				return nil, &awsError{http.StatusBadRequest, "ImageNotFoundException", fmt.Sprintf(
					"The image with imageId %s does not exist within the repository with name '%s' in the registry with id '%s'",
					id, r.Name, reg.Account)}
			default:
				return nil, errInvalidParam("%s", reason)
			}
			if !seen[img.Digest] {
				seen[img.Digest] = true
				out = append(out, detail(img))
			}
		}
		return map[string]any{"imageDetails": out}, nil
	}
	byKey := map[string]*image{}
	var keys []string
	for i := range imgs {
		ok, err := in.Filter.keep(&imgs[i])
		if err != nil {
			return nil, err
		}
		if ok {
			keys = append(keys, imgs[i].Digest.String())
			byKey[imgs[i].Digest.String()] = &imgs[i]
		}
	}
	page, next, err := paginate(keys, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	for _, k := range page {
		out = append(out, detail(byKey[k]))
	}
	resp := map[string]any{"imageDetails": out}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}

// --- ListImages --------------------------------------------------------------

// opListImages lists one entry per tag and one digest-only entry per
// untagged manifest, such as the platform images of a multi-arch index.
func opListImages(c *call) (any, error) {
	var in imageListing
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	_, _, imgs, err := c.repoImages(in.repoRef)
	if err != nil {
		return nil, err
	}
	byKey := map[string]imageID{}
	var keys []string
	for i := range imgs {
		ok, err := in.Filter.keep(&imgs[i])
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		dg := imgs[i].Digest.String()
		if len(imgs[i].Tags) == 0 {
			keys = append(keys, dg)
			byKey[dg] = imageID{ImageDigest: dg}
		}
		for _, t := range imgs[i].Tags {
			k := dg + "/" + t
			keys = append(keys, k)
			byKey[k] = imageID{ImageDigest: dg, ImageTag: t}
		}
	}
	sort.Strings(keys)
	page, next, err := paginate(keys, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	ids := []imageID{}
	for _, k := range page {
		ids = append(ids, byKey[k])
	}
	resp := map[string]any{"imageIds": ids}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}

// --- BatchGetImage -----------------------------------------------------------

type imageFailure struct {
	ImageID       imageID `json:"imageId"`
	FailureCode   string  `json:"failureCode"`
	FailureReason string  `json:"failureReason"`
}

func opBatchGetImage(c *call) (any, error) {
	var in struct {
		repoRef
		ImageIDs           []imageID `json:"imageIds"`
		AcceptedMediaTypes []string  `json:"acceptedMediaTypes"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.ImageIDs) == 0 || len(in.ImageIDs) > 100 {
		return nil, errInvalidParam("Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and 100'")
	}
	reg, r, imgs, err := c.repoImages(in.repoRef)
	if err != nil {
		return nil, err
	}
	type imageOut struct {
		RegistryID             string  `json:"registryId"`
		RepositoryName         string  `json:"repositoryName"`
		ImageID                imageID `json:"imageId"`
		ImageManifest          string  `json:"imageManifest"`
		ImageManifestMediaType string  `json:"imageManifestMediaType"`
	}
	images, failures := []imageOut{}, []imageFailure{}
	for _, id := range in.ImageIDs {
		img, code, reason := resolve(imgs, id)
		if code != "" {
			failures = append(failures, imageFailure{id, code, reason})
			continue
		}
		if len(in.AcceptedMediaTypes) > 0 && !containsFold(in.AcceptedMediaTypes, img.MediaType) {
			failures = append(failures, imageFailure{id, "UnsupportedImageType",
				"Manifest media type " + img.MediaType + " is not in the accepted media types"})
			continue
		}
		got := imageID{ImageDigest: img.Digest.String(), ImageTag: id.ImageTag}
		c.e.recordPull(reg.Account, reg.Region, r.Name, got.ImageDigest, c.cred.ARN)
		images = append(images, imageOut{RegistryID: reg.Account, RepositoryName: r.Name, ImageID: got,
			ImageManifest: string(img.Body), ImageManifestMediaType: img.MediaType})
	}
	return map[string]any{"images": images, "failures": failures}, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// --- BatchDeleteImage --------------------------------------------------------

func opBatchDeleteImage(c *call) (any, error) {
	var in struct {
		repoRef
		ImageIDs []imageID `json:"imageIds"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.ImageIDs) == 0 || len(in.ImageIDs) > 100 {
		return nil, errInvalidParam("Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and 100'")
	}
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(in.repoRef)
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	unlock := c.e.data.lockRepo(reg.Account, reg.Region, r.Name)
	defer unlock()
	imgs, err := c.e.data.images(c.ctx, reg.Account, reg.Region, r.Name)
	if err != nil {
		return nil, err
	}
	deleted, failures, err := c.e.data.batchDelete(c.ctx, reg.Account, reg.Region, r.Name, imgs, in.ImageIDs)
	if err != nil {
		return nil, err
	}
	return map[string]any{"imageIds": deleted, "failures": failures}, nil
}

// lockRepo makes deletes in one repository take turns: each decides from
// what it read whether a tag is an image's last. It returns the unlock.
func (d *dataPlane) lockRepo(account, region, name string) func() {
	mu, _ := d.locks.LoadOrStore(registryKey(account, region)+"/"+name, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// batchDelete deletes ids from repository name as BatchDeleteImage does: a
// tag id untags, a digest id removes the image with all its tags, and an
// image an index still lists is refused (ImageReferencedByManifestList). imgs
// are the repository's images, read under lockRepo, which the caller holds;
// they are updated as images go, so later ids see earlier deletions.
func (d *dataPlane) batchDelete(ctx context.Context, account, region, name string, imgs []image, ids []imageID) ([]imageID, []imageFailure, error) {
	deleted, failures := []imageID{}, []imageFailure{}
	for _, id := range ids {
		img, code, reason := resolve(imgs, id)
		if code != "" {
			failures = append(failures, imageFailure{id, code, reason})
			continue
		}
		var untag []string
		if id.ImageTag != "" {
			untag = []string{id.ImageTag}
		} else {
			untag = img.Tags
		}
		dg := img.Digest.String()
		removeManifest := len(img.Tags) <= len(untag)
		if parents := parentsOf(imgs, img.Digest); removeManifest && len(parents) > 0 {
			failures = append(failures, imageFailure{id, "ImageReferencedByManifestList",
				"Requested image referenced by manifest list: [" + strings.Join(parents, ", ") + "]"})
			continue
		}
		if err := d.deleteImage(ctx, account, region, name, img.Digest, untag, removeManifest); err != nil {
			return nil, nil, err
		}
		kept := img.Tags[:0:0]
		for _, t := range img.Tags {
			if !contains(untag, t) {
				kept = append(kept, t)
			}
		}
		img.Tags = kept
		if removeManifest {
			img.Digest = "" // gone: later ids naming it fail
		}
		for _, t := range untag {
			deleted = append(deleted, imageID{ImageDigest: dg, ImageTag: t})
		}
		if len(untag) == 0 {
			deleted = append(deleted, imageID{ImageDigest: dg})
		}
	}
	return deleted, failures, nil
}

// parentsOf returns the digests of the stored indexes listing dg.
func parentsOf(imgs []image, dg digest.Digest) []string {
	var out []string
	for _, p := range imgs {
		if p.Digest != "" && slices.Contains(p.Children, dg) {
			out = append(out, p.Digest.String())
		}
	}
	return out
}

// deleteImage removes tags from a manifest and, if removeManifest, the
// manifest itself, as the registry's DELETE would.
func (d *dataPlane) deleteImage(ctx context.Context, account, region, name string, dg digest.Digest, tags []string, removeManifest bool) error {
	reg, err := d.registry(account, region)
	if err != nil {
		return err
	}
	repo, err := d.repo(ctx, reg, name)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if err := repo.Tags(ctx).Untag(ctx, t); err != nil {
			var unknown distribution.ErrTagUnknown
			if !errors.As(err, &unknown) {
				return fmt.Errorf("untag %s:%s: %w", name, t, err)
			}
		}
	}
	if !removeManifest {
		return nil
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("manifests of %s: %w", name, err)
	}
	if err := ms.Delete(ctx, dg); err != nil {
		return fmt.Errorf("delete manifest %s@%s: %w", name, dg, err)
	}
	d.refs.recorded(referrerKey(account, region, name), func(rr *repoReferrers) { rr.remove(dg) })
	return nil
}
