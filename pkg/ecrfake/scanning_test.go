package ecrfake_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

func findings(c *ecr.Client, repo string, id ecrtypes.ImageIdentifier) (*ecr.DescribeImageScanFindingsOutput, error) {
	return c.DescribeImageScanFindings(context.Background(), &ecr.DescribeImageScanFindingsInput{RepositoryName: aws.String(repo), ImageId: &id})
}

func byTag(tag string) ecrtypes.ImageIdentifier {
	return ecrtypes.ImageIdentifier{ImageTag: aws.String(tag)}
}

func TestImageScan(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := noRetryClient(e)
	rc, p := imageFixture(t, e) // team/app: 1 and latest, 2, multi (an index)
	one := digestOf(t, p.one)
	subject, err := partial.Descriptor(p.one)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.push(t, "team/app:sbom", ociArtifact(t, sbomType, *subject, nil)); err != nil {
		t.Fatal(err)
	}

	_, err = findings(c, "team/app", byTag("1"))
	wantCode(t, err, "ScanNotFoundException")

	s, err := c.StartImageScan(ctx, &ecr.StartImageScanInput{RepositoryName: aws.String("team/app"), ImageId: &ecrtypes.ImageIdentifier{ImageTag: aws.String("1")}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(s.RegistryId) != e.Account() || aws.ToString(s.RepositoryName) != "team/app" || aws.ToString(s.ImageId.ImageDigest) != one ||
		aws.ToString(s.ImageId.ImageTag) != "1" || s.ImageScanStatus.Status != ecrtypes.ScanStatusInProgress {
		t.Errorf("StartImageScan = %+v %+v", s, s.ImageScanStatus)
	}
	// The scan is done at once, for the image whichever tag names it.
	for _, id := range []ecrtypes.ImageIdentifier{byTag("1"), byTag("latest"), {ImageDigest: aws.String(one)}} {
		f, err := findings(c, "team/app", id)
		if err != nil {
			t.Fatal(err)
		}
		if f.ImageScanStatus.Status != ecrtypes.ScanStatusComplete || aws.ToString(f.ImageScanStatus.Description) != "The scan was completed successfully." ||
			aws.ToString(f.ImageId.ImageDigest) != one || f.ImageScanFindings == nil || f.ImageScanFindings.ImageScanCompletedAt == nil ||
			len(f.ImageScanFindings.Findings) != 0 || f.ImageScanFindings.FindingSeverityCounts == nil || len(f.ImageScanFindings.FindingSeverityCounts) != 0 {
			t.Errorf("findings = %+v %+v", f, f.ImageScanFindings)
		}
	}
	// DescribeImages shows the scan of the scanned image only.
	for _, d := range describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app")}) {
		scanned := aws.ToString(d.ImageDigest) == one
		if scanned != (d.ImageScanStatus != nil) || scanned != (d.ImageScanFindingsSummary != nil) {
			t.Errorf("%s: scan status %+v, summary %+v", aws.ToString(d.ImageDigest), d.ImageScanStatus, d.ImageScanFindingsSummary)
		}
		if scanned && (d.ImageScanStatus.Status != ecrtypes.ScanStatusComplete || d.ImageScanFindingsSummary.FindingSeverityCounts == nil) {
			t.Errorf("scanned image: %+v %+v", d.ImageScanStatus, d.ImageScanFindingsSummary)
		}
	}

	// ECR's basic scanning: one scan per image a day.
	_, err = c.StartImageScan(ctx, &ecr.StartImageScanInput{RepositoryName: aws.String("team/app"), ImageId: &ecrtypes.ImageIdentifier{ImageDigest: aws.String(one)}})
	wantCode(t, err, "LimitExceededException")

	for name, tc := range map[string]struct {
		repo string
		id   ecrtypes.ImageIdentifier
		code string
	}{
		"unknown tag":        {"team/app", byTag("nope"), "ImageNotFoundException"},
		"unknown digest":     {"team/app", ecrtypes.ImageIdentifier{ImageDigest: aws.String("sha256:" + "00000000000000000000000000000000000000000000000000000000000000aa")}, "ImageNotFoundException"},
		"tag of other image": {"team/app", ecrtypes.ImageIdentifier{ImageTag: aws.String("2"), ImageDigest: aws.String(one)}, "ImageNotFoundException"},
		"bad digest":         {"team/app", ecrtypes.ImageIdentifier{ImageDigest: aws.String("sha256:xyz")}, "InvalidParameterException"},
		"no id":              {"team/app", ecrtypes.ImageIdentifier{}, "InvalidParameterException"},
		"unknown repository": {"team/none", byTag("1"), "RepositoryNotFoundException"},
		"index":              {"team/app", byTag("multi"), "UnsupportedImageTypeException"},
		"artifact":           {"team/app", byTag("sbom"), "UnsupportedImageTypeException"},
	} {
		_, err := c.StartImageScan(ctx, &ecr.StartImageScanInput{RepositoryName: aws.String(tc.repo), ImageId: &tc.id})
		if apiCode(err) != tc.code {
			t.Errorf("StartImageScan %s: error = %v, want %s", name, err, tc.code)
		}
		if tc.code == "UnsupportedImageTypeException" {
			tc.code = "ScanNotFoundException"
		}
		_, err = findings(c, tc.repo, tc.id)
		if apiCode(err) != tc.code {
			t.Errorf("DescribeImageScanFindings %s: error = %v, want %s", name, err, tc.code)
		}
	}
	_, err = c.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{RepositoryName: aws.String("team/app"), ImageId: &ecrtypes.ImageIdentifier{ImageTag: aws.String("1")}, MaxResults: aws.Int32(1001)})
	wantCode(t, err, "InvalidParameterException")
}

func TestScanOnPush(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := noRetryClient(e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/scanned"), ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/plain")})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("prod/app")})
	rc := newRegClient(t, e)
	for _, r := range []string{"team/scanned:1", "team/plain:1"} {
		if err := rc.push(t, r, randomImage(t)); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := findings(c, "team/scanned", byTag("1")); err != nil || f.ImageScanStatus.Status != ecrtypes.ScanStatusComplete {
		t.Errorf("scanOnPush repository: %+v %v", f, err)
	}
	_, err := findings(c, "team/plain", byTag("1"))
	wantCode(t, err, "ScanNotFoundException")
	subject, err := partial.Descriptor(randomImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.push(t, "team/scanned:sbom", ociArtifact(t, sbomType, *subject, nil)); err != nil {
		t.Fatal(err)
	}
	_, err = findings(c, "team/scanned", byTag("sbom"))
	wantCode(t, err, "ScanNotFoundException") // an artifact is not an image to scan

	// Registry rules override the repository's flag.
	if _, err := c.PutRegistryScanningConfiguration(ctx, &ecr.PutRegistryScanningConfigurationInput{ScanType: ecrtypes.ScanTypeBasic,
		Rules: []ecrtypes.RegistryScanningRule{scanRule(ecrtypes.ScanFrequencyScanOnPush, "prod/*")}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"team/scanned:2", "prod/app:1"} {
		if err := rc.push(t, r, randomImage(t)); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := findings(c, "prod/app", byTag("1")); err != nil || f.ImageScanStatus.Status != ecrtypes.ScanStatusComplete {
		t.Errorf("repository a SCAN_ON_PUSH rule covers: %+v %v", f, err)
	}
	_, err = findings(c, "team/scanned", byTag("2"))
	wantCode(t, err, "ScanNotFoundException")

	// The API push path (PutImage) scans too.
	img := randomImage(t)
	config, layers, manifest, mediaType := imageParts(t, img)
	for _, blob := range append([][]byte{config}, layers...) {
		apiUpload(t, c, "prod/app", blob, len(blob))
	}
	if _, err := c.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("prod/app"), ImageManifest: aws.String(string(manifest)),
		ImageManifestMediaType: aws.String(mediaType), ImageTag: aws.String("api")}); err != nil {
		t.Fatal(err)
	}
	if f, err := findings(c, "prod/app", byTag("api")); err != nil || f.ImageScanStatus.Status != ecrtypes.ScanStatusComplete {
		t.Errorf("PutImage: %+v %v", f, err)
	}
}
