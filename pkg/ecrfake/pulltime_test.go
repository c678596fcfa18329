package ecrfake_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// clock is a settable time for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func lastPulled(t *testing.T, c *ecr.Client, repo, tag string) *time.Time {
	t.Helper()
	out, err := c.DescribeImages(context.Background(), &ecr.DescribeImagesInput{RepositoryName: aws.String(repo),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String(tag)}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.ImageDetails[0].LastRecordedPullTime
}

func TestLastRecordedPullTimeAndExclusions(t *testing.T) {
	// Near real time: SigV4 signatures must be within 15 minutes of the clock.
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	e := ecrfake.Start(t, ecrfake.Options{Now: clk.Now})
	c := ecrClient(e)
	ctx := context.Background()
	rc, _ := imageFixture(t, e)

	if got := lastPulled(t, c, "team/app", "1"); got != nil {
		t.Fatalf("lastRecordedPullTime before any pull = %v, want none", got)
	}
	// A HEAD is not a pull; a GET is.
	if _, err := remote.Head(rc.ref(t, "team/app:1"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr)); err != nil {
		t.Fatal(err)
	}
	if got := lastPulled(t, c, "team/app", "1"); got != nil {
		t.Fatalf("lastRecordedPullTime after a HEAD = %v, want none", got)
	}
	if _, err := remote.Get(rc.ref(t, "team/app:1"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr)); err != nil {
		t.Fatal(err)
	}
	if got := lastPulled(t, c, "team/app", "1"); got == nil || !got.Equal(clk.Now()) {
		t.Fatalf("lastRecordedPullTime after a pull = %v, want %v", got, clk.Now())
	}
	if got := lastPulled(t, c, "team/app", "2"); got != nil {
		t.Fatalf("tag 2 was not pulled but has lastRecordedPullTime %v", got)
	}

	// BatchGetImage is a pull too.
	clk.Add(time.Minute)
	if _, err := c.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String("team/app"),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	if got := lastPulled(t, c, "team/app", "2"); got == nil || !got.Equal(clk.Now()) {
		t.Fatalf("lastRecordedPullTime after BatchGetImage = %v, want %v", got, clk.Now())
	}

	// The emulator's user excluded: its pulls leave the time alone.
	me := "arn:aws:iam::" + e.Account() + ":user/ecrfake"
	reg, err := c.RegisterPullTimeUpdateExclusion(ctx, &ecr.RegisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String(me)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(reg.PrincipalArn) != me || reg.CreatedAt == nil || !reg.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("RegisterPullTimeUpdateExclusion = %+v", reg)
	}
	before := lastPulled(t, c, "team/app", "1")
	clk.Add(time.Minute)
	if _, err := remote.Get(rc.ref(t, "team/app:1"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr)); err != nil {
		t.Fatal(err)
	}
	if got := lastPulled(t, c, "team/app", "1"); got == nil || !got.Equal(*before) {
		t.Fatalf("an excluded principal's pull moved lastRecordedPullTime to %v (was %v)", got, before)
	}
	if _, err := c.DeregisterPullTimeUpdateExclusion(ctx, &ecr.DeregisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String(me)}); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(rc.ref(t, "team/app:1"), remote.WithAuth(rc.auth), remote.WithTransport(rc.tr)); err != nil {
		t.Fatal(err)
	}
	if got := lastPulled(t, c, "team/app", "1"); got == nil || !got.Equal(clk.Now()) {
		t.Fatalf("after deregistering, a pull left lastRecordedPullTime at %v, want %v", got, clk.Now())
	}
}

func TestPullTimeUpdateExclusionsAPI(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	arn := func(i int) string { return "arn:aws:iam::123456789012:role/ci-" + string(rune('a'+i)) }
	for i := range 5 {
		if _, err := c.RegisterPullTimeUpdateExclusion(ctx, &ecr.RegisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String(arn(i))}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.RegisterPullTimeUpdateExclusion(ctx, &ecr.RegisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String(arn(0))})
	wantCode(t, err, "ExclusionAlreadyExistsException")
	_, err = c.RegisterPullTimeUpdateExclusion(ctx, &ecr.RegisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String(arn(5))})
	wantCode(t, err, "LimitExceededException")
	_, err = c.RegisterPullTimeUpdateExclusion(ctx, &ecr.RegisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String("arn:aws:s3:::bucket")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.DeregisterPullTimeUpdateExclusion(ctx, &ecr.DeregisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String("arn:aws:iam::123456789012:user/nobody")})
	wantCode(t, err, "ExclusionNotFoundException")

	var all []string
	in := &ecr.ListPullTimeUpdateExclusionsInput{MaxResults: aws.Int32(2)}
	pages := 0
	for {
		out, err := c.ListPullTimeUpdateExclusions(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, out.PullTimeUpdateExclusions...)
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	if pages != 3 || len(all) != 5 || all[0] != arn(0) || all[4] != arn(4) {
		t.Fatalf("listed %v in %d pages; want the 5 ARNs in order in 3 pages", all, pages)
	}

	e.DenyAction("arn:aws:iam::"+e.Account()+":user/ecrfake", "ecr:RegisterPullTimeUpdateExclusion")
	_, err = c.RegisterPullTimeUpdateExclusion(ctx, &ecr.RegisterPullTimeUpdateExclusionInput{PrincipalArn: aws.String(arn(9))})
	wantCode(t, err, "AccessDeniedException")
}

func TestListImageReferrers(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	rc := newRegClient(t, e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("ref/app")})
	img := randomImage(t)
	if err := rc.push(t, "ref/app:1", img); err != nil {
		t.Fatal(err)
	}
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, typ := range []string{sbomType, sigType} {
		a := ociArtifact(t, typ, *subject, map[string]string{"kind": typ})
		dg := mustDigest(t, a)
		if err := remote.Write(rc.ref(t, "ref/app@"+dg.String()), a, remote.WithAuth(rc.auth), remote.WithTransport(rc.tr)); err != nil {
			t.Fatal(err)
		}
		want = append(want, dg.String())
	}

	list := func(in *ecr.ListImageReferrersInput) []ecrtypes.ImageReferrer {
		t.Helper()
		in.RepositoryName = aws.String("ref/app")
		in.SubjectId = &ecrtypes.SubjectIdentifier{ImageDigest: aws.String(subject.Digest.String())}
		var all []ecrtypes.ImageReferrer
		for {
			out, err := c.ListImageReferrers(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, out.Referrers...)
			if out.NextToken == nil {
				return all
			}
			in.NextToken = out.NextToken
		}
	}
	got := list(&ecr.ListImageReferrersInput{MaxResults: aws.Int32(1)})
	var gotDigests []string
	for _, r := range got {
		gotDigests = append(gotDigests, aws.ToString(r.Digest))
	}
	slices.Sort(gotDigests)
	slices.Sort(want)
	if !slices.Equal(gotDigests, want) {
		t.Fatalf("ListImageReferrers = %v, want %v", gotDigests, want)
	}
	for _, r := range got {
		if r.ArtifactStatus != ecrtypes.ArtifactStatusActive || r.Size == nil || *r.Size == 0 ||
			!strings.HasPrefix(aws.ToString(r.ArtifactType), "application/vnd.example.") || r.Annotations["kind"] != aws.ToString(r.ArtifactType) {
			t.Errorf("referrer %+v: want ACTIVE, a size, its artifactType and annotations", r)
		}
	}
	if got := list(&ecr.ListImageReferrersInput{Filter: &ecrtypes.ListImageReferrersFilter{ArtifactTypes: []string{sigType}}}); len(got) != 1 || aws.ToString(got[0].ArtifactType) != sigType {
		t.Errorf("filtered by %s: %+v", sigType, got)
	}
	if got := list(&ecr.ListImageReferrersInput{Filter: &ecrtypes.ListImageReferrersFilter{ArtifactStatus: ecrtypes.ArtifactStatusFilterArchived}}); len(got) != 0 {
		t.Errorf("ARCHIVED: %+v, want none (the emulator archives nothing)", got)
	}

	_, err = c.ListImageReferrers(ctx, &ecr.ListImageReferrersInput{RepositoryName: aws.String("ref/none"),
		SubjectId: &ecrtypes.SubjectIdentifier{ImageDigest: aws.String(subject.Digest.String())}})
	wantCode(t, err, "RepositoryNotFoundException")
	_, err = c.ListImageReferrers(ctx, &ecr.ListImageReferrersInput{RepositoryName: aws.String("ref/app"),
		SubjectId: &ecrtypes.SubjectIdentifier{ImageDigest: aws.String("sha256:nope")}})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.ListImageReferrers(ctx, &ecr.ListImageReferrersInput{RepositoryName: aws.String("ref/app"), MaxResults: aws.Int32(51),
		SubjectId: &ecrtypes.SubjectIdentifier{ImageDigest: aws.String(subject.Digest.String())}})
	wantCode(t, err, "InvalidParameterException")
}
