package ecrfake_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// lcRule is one lifecycle rule's JSON.
func lcRule(priority int, selection string) string {
	n := strconv.Itoa(priority)
	return `{"rulePriority":` + n + `,"description":"rule ` + n + `","selection":` + selection + `,"action":{"type":"expire"}}`
}

func lcPolicy(rules ...string) string { return `{"rules":[` + strings.Join(rules, ",") + `]}` }

// lifecycleRepo is the history TestLifecyclePolicyPreview and its apply
// work on, oldest first: feat (feature-x), u1 and u2 (untagged: "latest"
// moved on), dev1, dev2, dev3 (dev-N), rel1 (release-1), u3 (latest).
type lifecycleRepo struct {
	digests map[string]string // name -> digest
}

func pushLifecycleRepo(t *testing.T, e *ecrfake.Emulator, repo string) lifecycleRepo {
	t.Helper()
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)})
	rc := newRegClient(t, e)
	h := lifecycleRepo{digests: map[string]string{}}
	for _, p := range []struct{ name, tag string }{
		{"feat", "feature-x"}, {"u1", "latest"}, {"u2", "latest"}, {"dev1", "dev-1"}, {"dev2", "dev-2"},
		{"dev3", "dev-3"}, {"rel1", "release-1"}, {"u3", "latest"},
	} {
		img := randomImage(t)
		if err := rc.push(t, repo+":"+p.tag, img); err != nil {
			t.Fatal(err)
		}
		h.digests[p.name] = digestOf(t, img)
		time.Sleep(5 * time.Millisecond) // distinct push times
	}
	return h
}

// names maps digests back to fixture names.
func (h lifecycleRepo) names() map[string]string {
	out := map[string]string{}
	for n, d := range h.digests {
		out[d] = n
	}
	return out
}

var previewPolicy = lcPolicy(
	lcRule(1, `{"tagStatus":"tagged","tagPrefixList":["dev"],"countType":"imageCountMoreThan","countNumber":1}`),
	lcRule(2, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`),
	lcRule(3, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3}`),
)

// previewWant: rule 1 keeps dev3; rule 2 keeps u2 (newest untagged); rule 3
// keeps u3, rel1, dev3 (the newest three of all) and of the rest may only
// expire feat: every other image was selected by rule 1 or 2.
var previewWant = map[string]int32{"dev1": 1, "dev2": 1, "u1": 2, "feat": 3}

func previewByName(t *testing.T, h lifecycleRepo, results []ecrtypes.LifecyclePolicyPreviewResult) map[string]int32 {
	t.Helper()
	names := h.names()
	got := map[string]int32{}
	for _, r := range results {
		n, ok := names[aws.ToString(r.ImageDigest)]
		if !ok {
			t.Fatalf("preview names unknown image %s", aws.ToString(r.ImageDigest))
		}
		if r.Action == nil || r.Action.Type != ecrtypes.ImageActionTypeExpire {
			t.Fatalf("preview result %s: action %+v, want EXPIRE", n, r.Action)
		}
		got[n] = aws.ToInt32(r.AppliedRulePriority)
	}
	return got
}

func TestLifecyclePolicyPreview(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	repo := aws.String("team/life")
	h := pushLifecycleRepo(t, e, *repo)

	_, err := c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo})
	wantCode(t, err, "LifecyclePolicyPreviewNotFoundException")
	_, err = c.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: repo})
	wantCode(t, err, "LifecyclePolicyNotFoundException")
	_, err = c.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: aws.String("team/none"), LifecyclePolicyText: aws.String(previewPolicy)})
	wantCode(t, err, "RepositoryNotFoundException")
	anyFirst := lcPolicy(lcRule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3}`),
		lcRule(2, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`))
	_, err = c.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: repo, LifecyclePolicyText: aws.String(anyFirst)})
	wantCode(t, err, "InvalidParameterException")
	if !strings.Contains(err.Error(), "rulePriority 1") {
		t.Errorf("error %q does not name the rule", err)
	}

	start, err := c.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: repo, LifecyclePolicyText: aws.String(previewPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	if start.Status != ecrtypes.LifecyclePolicyPreviewStatusInProgress || aws.ToString(start.LifecyclePolicyText) != previewPolicy ||
		aws.ToString(start.RegistryId) != e.Account() || aws.ToString(start.RepositoryName) != *repo {
		t.Fatalf("start = %+v", start)
	}
	// The SDK's own waiter, as users would wait for the preview.
	w := ecr.NewLifecyclePolicyPreviewCompleteWaiter(c, func(o *ecr.LifecyclePolicyPreviewCompleteWaiterOptions) { o.MinDelay = 10 * time.Millisecond })
	if err := w.Wait(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo}, 5*time.Second); err != nil {
		t.Fatalf("waiter: %v", err)
	}
	got, err := c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ecrtypes.LifecyclePolicyPreviewStatusComplete || aws.ToString(got.LifecyclePolicyText) != previewPolicy ||
		got.Summary == nil || aws.ToInt32(got.Summary.ExpiringImageTotalCount) != int32(len(previewWant)) || got.NextToken != nil {
		t.Fatalf("get = status %s, summary %+v, next %v", got.Status, got.Summary, got.NextToken)
	}
	if m := previewByName(t, h, got.PreviewResults); !maps.Equal(m, previewWant) {
		t.Fatalf("preview expires %v, want %v", m, previewWant)
	}
	details := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: repo})
	if len(details) != 8 {
		t.Fatalf("a preview deleted images: %d left, want 8", len(details))
	}
	pushed := map[string]time.Time{}
	for _, d := range details {
		pushed[aws.ToString(d.ImageDigest)] = aws.ToTime(d.ImagePushedAt)
	}
	for _, r := range got.PreviewResults {
		dg := aws.ToString(r.ImageDigest)
		if !aws.ToTime(r.ImagePushedAt).Equal(pushed[dg]) {
			t.Errorf("%s: preview pushedAt %v, DescribeImages %v", dg, aws.ToTime(r.ImagePushedAt), pushed[dg])
		}
		wantTags := map[string][]string{"dev1": {"dev-1"}, "dev2": {"dev-2"}, "feat": {"feature-x"}, "u1": nil}[h.names()[dg]]
		if strings.Join(r.ImageTags, ",") != strings.Join(wantTags, ",") {
			t.Errorf("%s: tags %v, want %v", h.names()[dg], r.ImageTags, wantTags)
		}
	}

	// Filters, imageIds and pages select from the same results.
	for status, want := range map[ecrtypes.TagStatus]map[string]int32{
		ecrtypes.TagStatusUntagged: {"u1": 2},
		ecrtypes.TagStatusTagged:   {"dev1": 1, "dev2": 1, "feat": 3},
		ecrtypes.TagStatusAny:      previewWant,
	} {
		out, err := c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo,
			Filter: &ecrtypes.LifecyclePolicyPreviewFilter{TagStatus: status}})
		if err != nil {
			t.Fatal(err)
		}
		if m := previewByName(t, h, out.PreviewResults); !maps.Equal(m, want) {
			t.Errorf("filter %s: %v, want %v", status, m, want)
		}
	}
	out, err := c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo,
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("dev-1")}, {ImageDigest: aws.String(h.digests["rel1"])}, {ImageDigest: aws.String(h.digests["u1"])}}})
	if err != nil {
		t.Fatal(err)
	}
	if m := previewByName(t, h, out.PreviewResults); !maps.Equal(m, map[string]int32{"dev1": 1, "u1": 2}) {
		t.Errorf("imageIds dev-1, rel1, u1: %v, want dev1 and u1 (rel1 does not expire)", m)
	}
	paged := map[string]int32{}
	pages := 0
	for p := ecr.NewGetLifecyclePolicyPreviewPaginator(c, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo, MaxResults: aws.Int32(1)}); p.HasMorePages(); pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.PreviewResults) > 1 {
			t.Fatalf("page of %d with maxResults 1", len(out.PreviewResults))
		}
		maps.Copy(paged, previewByName(t, h, out.PreviewResults))
	}
	if pages != len(previewWant) || !maps.Equal(paged, previewWant) {
		t.Errorf("%d pages of 1: %v, want %d pages: %v", pages, paged, len(previewWant), previewWant)
	}
	_, err = c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo, MaxResults: aws.Int32(1),
		ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("dev-1")}}})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo, MaxResults: aws.Int32(101)})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo,
		Filter: &ecrtypes.LifecyclePolicyPreviewFilter{TagStatus: "SOME"}})
	wantCode(t, err, "InvalidParameterException")

	// Without a text, the repository's own policy is previewed.
	if _, err := c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: repo,
		LifecyclePolicyText: aws.String(lcPolicy(lcRule(1, `{"tagStatus":"tagged","tagPatternList":["*-x"],"countType":"imageCountMoreThan","countNumber":1}`)))}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartLifecyclePolicyPreview(ctx, &ecr.StartLifecyclePolicyPreviewInput{RepositoryName: repo}); err != nil {
		t.Fatal(err)
	}
	out, err = c.GetLifecyclePolicyPreview(ctx, &ecr.GetLifecyclePolicyPreviewInput{RepositoryName: repo})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.PreviewResults) != 0 || aws.ToInt32(out.Summary.ExpiringImageTotalCount) != 0 || !strings.Contains(aws.ToString(out.LifecyclePolicyText), "*-x") {
		t.Errorf("preview of the stored policy (one feature-x image, keep 1): %+v, summary %+v", out.PreviewResults, out.Summary)
	}
}

// TestApplyLifecyclePolicies applies what the preview showed and checks the
// repository afterwards.
func TestApplyLifecyclePolicies(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	ctx := context.Background()
	repo := aws.String("team/life")
	h := pushLifecycleRepo(t, e, *repo)
	if _, err := e.ApplyLifecyclePolicies(ctx, "", "", *repo); err == nil || !strings.Contains(err.Error(), "LifecyclePolicyNotFoundException") {
		t.Fatalf("apply without a policy: %v, want LifecyclePolicyNotFoundException", err)
	}
	if _, err := c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: repo, LifecyclePolicyText: aws.String(previewPolicy)}); err != nil {
		t.Fatal(err)
	}
	expired, err := e.ApplyLifecyclePolicies(ctx, "", "", *repo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int32{}
	names := h.names()
	for _, x := range expired {
		if x.Repository != *repo || x.Account != e.Account() || x.Region != e.Region() {
			t.Errorf("expired %+v: wrong place", x)
		}
		got[names[x.Digest]] = int32(x.RulePriority)
	}
	if !maps.Equal(got, previewWant) || len(expired) != len(previewWant) {
		t.Fatalf("apply expired %v (%d entries), want %v", got, len(expired), previewWant)
	}
	if names[expired[0].Digest] != "feat" || names[expired[len(expired)-1].Digest] != "dev2" {
		t.Errorf("expired not oldest first: %+v", expired)
	}
	left := map[string]bool{}
	for _, d := range describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: repo}) {
		left[names[aws.ToString(d.ImageDigest)]] = true
	}
	if want := map[string]bool{"u2": true, "dev3": true, "rel1": true, "u3": true}; !maps.Equal(left, want) {
		t.Fatalf("after apply the repository holds %v, want %v", left, want)
	}
	again, err := e.ApplyLifecyclePolicies(ctx, "", "", "")
	if err != nil || len(again) != 0 {
		t.Fatalf("second apply expired %+v, %v; want nothing", again, err)
	}
}

// TestApplyLifecycleMovesWithTheClock: sinceImagePushed counts days on the
// emulator's clock, the admin endpoint applies every repository's policy,
// and an index's children are kept while the index stays.
func TestApplyLifecycleMovesWithTheClock(t *testing.T) {
	var offset atomic.Int64
	e := ecrfake.Start(t, ecrfake.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	c := ecrClient(e)
	ctx := context.Background()
	_, p := imageFixture(t, e) // team/app: one (1, latest), two (2), multi (an index of two untagged images)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/nopolicy")})
	rc := newRegClient(t, e)
	if err := rc.push(t, "team/nopolicy:old", randomImage(t)); err != nil {
		t.Fatal(err)
	}
	put := func(repo, policy string) {
		t.Helper()
		defer offset.Store(offset.Swap(0)) // signatures are checked against the clock
		if _, err := c.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String(repo), LifecyclePolicyText: aws.String(policy)}); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(query string) (int, []ecrfake.ExpiredImage, string) {
		t.Helper()
		resp, err := http.Post(e.URL()+"/_ecrfake/lifecycle?"+query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, nil, string(b)
		}
		var out struct{ Expired []ecrfake.ExpiredImage }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out.Expired, ""
	}
	// Untagged images older than a day: only the index's children are
	// untagged, and they stay with it.
	put("team/app", lcPolicy(
		lcRule(1, `{"tagStatus":"tagged","tagPrefixList":["2"],"countType":"sinceImagePushed","countUnit":"days","countNumber":7}`),
		lcRule(2, `{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`)))
	if code, x, body := apply(""); code != http.StatusOK || len(x) != 0 {
		t.Fatalf("apply today: %d %+v %s, want nothing expired", code, x, body)
	}
	offset.Store(int64(3 * 24 * time.Hour))
	if code, x, body := apply("repository=team/app"); code != http.StatusOK || len(x) != 0 {
		t.Fatalf("apply in 3 days: %d %+v %s, want nothing (children of a kept index, tag 2 not 7 days old)", code, x, body)
	}
	offset.Store(int64(8 * 24 * time.Hour))
	code, x, body := apply("account=" + e.Account() + "&region=" + e.Region())
	if code != http.StatusOK || len(x) != 1 || x[0].Digest != digestOf(t, p.two) || x[0].RulePriority != 1 || x[0].Repository != "team/app" ||
		strings.Join(x[0].Tags, ",") != "2" {
		t.Fatalf("apply in 8 days: %d %+v %s, want image two by rule 1", code, x, body)
	}
	// Everything older than a day, the index before its children.
	put("team/app", lcPolicy(lcRule(1, `{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}`)))
	code, x, body = apply("repository=" + url.QueryEscape("team/app"))
	if code != http.StatusOK || len(x) != 4 {
		t.Fatalf("apply any: %d %+v %s, want one, multi and its two children", code, x, body)
	}
	offset.Store(0) // back to the present, where signatures are checked
	if left := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/app")}); len(left) != 0 {
		t.Fatalf("team/app still holds %d images", len(left))
	}
	if left := describeAll(t, c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/nopolicy")}); len(left) != 1 {
		t.Fatalf("a repository without a policy lost images: %d left", len(left))
	}
	for query, want := range map[string]int{
		"repository=team/none":     http.StatusBadRequest,
		"repository=team/nopolicy": http.StatusBadRequest,
		"account=999999999999":     http.StatusBadRequest,
		"repository=team/app&x=1":  http.StatusOK,
		"region=eu-west-1":         http.StatusOK,
		"repository=Bad/Name":      http.StatusBadRequest,
	} {
		if code, _, body := apply(query); code != want {
			t.Errorf("POST lifecycle?%s: %d %s, want %d", query, code, body, want)
		}
	}
	resp, err := http.Get(e.URL() + "/_ecrfake/lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET lifecycle: %d, want 405", resp.StatusCode)
	}
}

// TestPutLifecyclePolicyValidatesRules: PutLifecyclePolicy refuses what the
// evaluator would refuse, naming the rule.
func TestPutLifecyclePolicyValidatesRules(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	for _, tc := range []struct{ policy, want string }{
		{lcPolicy(lcRule(7, `{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}`)), "rulePriority 7"},
		{lcPolicy(lcRule(1, `{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"weeks","countNumber":1}`)), `countUnit "weeks"`},
		{lcPolicy(lcRule(1, `{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}`), lcRule(1, `{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}`)), "unique"},
	} {
		_, err := c.PutLifecyclePolicy(context.Background(), &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String("team/app"), LifecyclePolicyText: aws.String(tc.policy)})
		wantCode(t, err, "InvalidParameterException")
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Lifecycle policy validation failure") {
			t.Errorf("error %q, want it to contain %q", err, tc.want)
		}
	}
	// The newer parts of the syntax are accepted (and not evaluated).
	archive := lcPolicy(`{"rulePriority":1,"selection":{"tagStatus":"any","storageClass":"standard","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}`,
		`{"rulePriority":2,"selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":90},"action":{"type":"expire"}}`)
	if _, err := c.PutLifecyclePolicy(context.Background(), &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String("team/app"), LifecyclePolicyText: aws.String(archive)}); err != nil {
		t.Errorf("archive policy refused: %v", err)
	}
}
