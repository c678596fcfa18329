package ecrfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Image scanning (StartImageScan, DescribeImageScanFindings, scan on push).
// A scan completes at once and finds nothing: the emulator has no
// vulnerability database.

const (
	scanComplete            = "COMPLETE"
	scanCompleteDescription = "The scan was completed successfully."
	// scanQuota is ECR's basic-scanning limit: one scan per image per day.
	scanQuota = 24 * time.Hour
)

// imageScan is the scan of one image, by manifest digest.
type imageScan struct {
	CompletedAt time.Time `json:"completedAt"`
}

type scanStatus struct {
	Status      string `json:"status"`
	Description string `json:"description"`
}

// scanSummary is DescribeImages' imageScanFindingsSummary.
type scanSummary struct {
	ImageScanCompletedAt         float64        `json:"imageScanCompletedAt"`
	VulnerabilitySourceUpdatedAt float64        `json:"vulnerabilitySourceUpdatedAt"`
	FindingSeverityCounts        map[string]int `json:"findingSeverityCounts"`
}

func (s *imageScan) summary() *scanSummary {
	return &scanSummary{ImageScanCompletedAt: epoch(s.CompletedAt), VulnerabilitySourceUpdatedAt: epoch(s.CompletedAt),
		FindingSeverityCounts: map[string]int{}}
}

// scannable reports whether a manifest whose config has mediaType is a
// container image ECR scans (not an artifact such as a signature or an SBOM).
func scannable(configMediaType string) bool {
	switch configMediaType {
	case "", "application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json":
		return true
	}
	return false
}

// recordScan stores a completed scan of dg in r. The caller holds st.mu.
func recordScan(r *repository, dg digest.Digest, now time.Time) {
	if r.Scans == nil {
		r.Scans = map[string]*imageScan{}
	}
	r.Scans[dg.String()] = &imageScan{CompletedAt: now}
}

// scanOnPushHook wraps w for a manifest PUT of body to repository name: when
// distribution stored it (201) and the repository's effective scanning
// configuration scans on push, the image gets a scan. Indexes are not scanned.
func (e *Emulator) scanOnPushHook(w http.ResponseWriter, account, region, name string, body []byte) http.ResponseWriter {
	var f imageFields
	if err := json.Unmarshal(body, &f); err != nil || f.Manifests != nil || (f.Config != nil && !scannable(f.Config.MediaType)) {
		return w
	}
	return &statusHook{ResponseWriter: w, hook: func(code int) {
		if code != http.StatusCreated {
			return
		}
		e.st.mu.Lock()
		defer e.st.mu.Unlock()
		reg := e.st.registry(account, region)
		r := reg.Repositories[name]
		if r == nil || !effectiveScanning(reg, r).ScanOnPush {
			return
		}
		recordScan(r, digest.FromBytes(body), e.opts.Now())
		if err := e.st.save(); err != nil {
			e.log.Error("scan on push", "repository", name, "err", err)
		}
	}}
}

// scanSummaries returns the scans of r by digest, for DescribeImages.
func (e *Emulator) scanSummaries(r *repository) map[string]*scanSummary {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	out := map[string]*scanSummary{}
	for dg, s := range r.Scans {
		out[dg] = s.summary()
	}
	return out
}

// scannedImage resolves the image of a scan request.
func (c *call) scannedImage(ref repoRef, id imageID) (*registryState, *repository, *image, error) {
	if id.ImageDigest == "" && id.ImageTag == "" {
		return nil, nil, nil, errInvalidParam("Invalid parameter at 'imageId': both tag and digest cannot be null")
	}
	reg, r, imgs, err := c.repoImages(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	img, code, reason := resolve(imgs, id)
	switch code {
	case "":
		return reg, r, img, nil
	case "ImageNotFound", "ImageTagDoesNotMatchDigest":
		return nil, nil, nil, &awsError{http.StatusBadRequest, "ImageNotFoundException", fmt.Sprintf(
			"The image with imageId %s does not exist within the repository with name '%s' in the registry with id '%s'",
			id, r.Name, reg.Account)}
	}
	return nil, nil, nil, errInvalidParam("%s", reason)
}

type scanRequest struct {
	repoRef
	ImageID imageID `json:"imageId"`
}

func opStartImageScan(c *call) (any, error) {
	var in scanRequest
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	reg, r, img, err := c.scannedImage(in.repoRef, in.ImageID)
	if err != nil {
		return nil, err
	}
	if img.Children != nil || strings.Contains(img.MediaType, "list") || strings.Contains(img.MediaType, "index") {
		return nil, &awsError{http.StatusBadRequest, "UnsupportedImageTypeException",
			"The image is not supported for scanning: image indexes and manifest lists cannot be scanned; scan their platform images"}
	}
	if !scannable(img.Artifact) {
		return nil, &awsError{http.StatusBadRequest, "UnsupportedImageTypeException",
			fmt.Sprintf("The image is not supported for scanning: artifacts of type '%s' are not container images", img.Artifact)}
	}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	if reg.Repositories[r.Name] != r {
		return nil, errRepoNotFound(r.Name, reg.Account)
	}
	now := c.e.opts.Now()
	if s := r.Scans[img.Digest.String()]; s != nil && now.Sub(s.CompletedAt) < scanQuota {
		return nil, &awsError{http.StatusBadRequest, "LimitExceededException",
			"The scan quota per image has been exceeded. Wait and try again."}
	}
	recordScan(r, img.Digest, now)
	if err := c.e.st.save(); err != nil {
		return nil, err
	}
	// ECR answers IN_PROGRESS; here the scan is already COMPLETE for
	// DescribeImageScanFindings (and `aws ecr wait image-scan-complete`).
	return map[string]any{"registryId": reg.Account, "repositoryName": r.Name,
		"imageId":         imageID{ImageDigest: img.Digest.String(), ImageTag: in.ImageID.ImageTag},
		"imageScanStatus": scanStatus{Status: "IN_PROGRESS", Description: "The scan is in progress."}}, nil
}

func opDescribeImageScanFindings(c *call) (any, error) {
	var in struct {
		scanRequest
		NextToken  string `json:"nextToken"`
		MaxResults int    `json:"maxResults"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkMaxResults(in.MaxResults, 1000); err != nil {
		return nil, err
	}
	reg, r, img, err := c.scannedImage(in.repoRef, in.ImageID)
	if err != nil {
		return nil, err
	}
	id := imageID{ImageDigest: img.Digest.String(), ImageTag: in.ImageID.ImageTag}
	c.e.st.mu.Lock()
	defer c.e.st.mu.Unlock()
	s := r.Scans[img.Digest.String()]
	if s == nil {
		return nil, &awsError{http.StatusBadRequest, "ScanNotFoundException", fmt.Sprintf(
			"Image scan does not exist for the image with '%s' in the repository with name '%s' in the registry with id '%s'",
			in.ImageID, r.Name, reg.Account)}
	}
	return map[string]any{"registryId": reg.Account, "repositoryName": r.Name, "imageId": id,
		"imageScanStatus": scanStatus{Status: scanComplete, Description: scanCompleteDescription},
		"imageScanFindings": map[string]any{
			"imageScanCompletedAt":         epoch(s.CompletedAt),
			"vulnerabilitySourceUpdatedAt": epoch(s.CompletedAt),
			"findingSeverityCounts":        map[string]int{},
			"findings":                     []struct{}{},
		}}, nil
}
