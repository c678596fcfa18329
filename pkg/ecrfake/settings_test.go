package ecrfake_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// noRetryClient is an ECR client that does not retry LimitExceededException.
func noRetryClient(e *ecrfake.Emulator) *ecr.Client {
	return ecr.NewFromConfig(sdkConfig(e, e.AccessKey(), e.SecretKey()), func(o *ecr.Options) { o.Retryer = aws.NopRetryer{} })
}

func TestPutImageTagMutability(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	rc := newRegClient(t, e)
	for _, tag := range []string{"1", "latest"} {
		if err := rc.push(t, "team/app:"+tag, randomImage(t)); err != nil {
			t.Fatal(err)
		}
	}

	out, err := c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"),
		ImageTagMutability: ecrtypes.ImageTagMutabilityImmutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []ecrtypes.ImageTagMutabilityExclusionFilter{
			{FilterType: ecrtypes.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String("latest*")}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.RegistryId) != e.Account() || aws.ToString(out.RepositoryName) != "team/app" ||
		out.ImageTagMutability != ecrtypes.ImageTagMutabilityImmutableWithExclusion || len(out.ImageTagMutabilityExclusionFilters) != 1 ||
		aws.ToString(out.ImageTagMutabilityExclusionFilters[0].Filter) != "latest*" {
		t.Errorf("answer = %+v", out)
	}
	wantRegistryError(t, rc.push(t, "team/app:1", randomImage(t)), "TAG_INVALID",
		"The image tag '1' already exists in the 'team/app' repository and cannot be overwritten because the tag is immutable.")
	if err := rc.push(t, "team/app:latest", randomImage(t)); err != nil {
		t.Errorf("excluded tag refused: %v", err)
	}
	d, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/app"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Repositories[0]; r.ImageTagMutability != ecrtypes.ImageTagMutabilityImmutableWithExclusion || len(r.ImageTagMutabilityExclusionFilters) != 1 {
		t.Errorf("DescribeRepositories = %+v", r)
	}

	// Back to MUTABLE: the tag may move again, the filters are gone.
	out, err = c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"), ImageTagMutability: ecrtypes.ImageTagMutabilityMutable})
	if err != nil || len(out.ImageTagMutabilityExclusionFilters) != 0 {
		t.Fatalf("%+v %v", out, err)
	}
	if err := rc.push(t, "team/app:1", randomImage(t)); err != nil {
		t.Errorf("MUTABLE again, push refused: %v", err)
	}

	for _, tc := range []struct {
		in   ecr.PutImageTagMutabilityInput
		code string
	}{
		{ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/none"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutable}, "RepositoryNotFoundException"},
		{ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"), ImageTagMutability: "SOMETIMES"}, "InvalidParameterException"},
		{ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"), ImageTagMutability: ecrtypes.ImageTagMutabilityMutableWithExclusion}, "InvalidParameterException"},
		{ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutable,
			ImageTagMutabilityExclusionFilters: []ecrtypes.ImageTagMutabilityExclusionFilter{{FilterType: "WILDCARD", Filter: aws.String("x")}}}, "InvalidParameterException"},
	} {
		_, err := c.PutImageTagMutability(ctx, &tc.in)
		wantCode(t, err, tc.code)
	}
}

func TestPutImageScanningConfiguration(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	out, err := c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{RepositoryName: aws.String("team/app"),
		ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !out.ImageScanningConfiguration.ScanOnPush || aws.ToString(out.RepositoryName) != "team/app" || aws.ToString(out.RegistryId) != e.Account() {
		t.Errorf("answer = %+v", out)
	}
	d, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/app"}})
	if err != nil || !d.Repositories[0].ImageScanningConfiguration.ScanOnPush {
		t.Errorf("DescribeRepositories: %+v %v", d, err)
	}
	_, err = c.PutImageScanningConfiguration(ctx, &ecr.PutImageScanningConfigurationInput{RepositoryName: aws.String("team/none"),
		ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}})
	wantCode(t, err, "RepositoryNotFoundException")
}

func dest(region, account string) ecrtypes.ReplicationDestination {
	return ecrtypes.ReplicationDestination{Region: aws.String(region), RegistryId: aws.String(account)}
}

func TestReplicationConfiguration(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	d, err := c.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.RegistryId) != e.Account() || d.ReplicationConfiguration == nil || len(d.ReplicationConfiguration.Rules) != 0 {
		t.Fatalf("DescribeRegistry before any configuration = %+v", d)
	}
	cfg := &ecrtypes.ReplicationConfiguration{Rules: []ecrtypes.ReplicationRule{{
		Destinations:      []ecrtypes.ReplicationDestination{dest("eu-west-1", e.Account()), dest("us-east-1", "222222222222")},
		RepositoryFilters: []ecrtypes.RepositoryFilter{{Filter: aws.String("team"), FilterType: ecrtypes.RepositoryFilterTypePrefixMatch}},
	}}}
	out, err := c.PutReplicationConfiguration(ctx, &ecr.PutReplicationConfigurationInput{ReplicationConfiguration: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.ReplicationConfiguration.Rules) != 1 || len(out.ReplicationConfiguration.Rules[0].Destinations) != 2 {
		t.Errorf("answer = %+v", out.ReplicationConfiguration)
	}
	d, err = c.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.ReplicationConfiguration.Rules; len(r) != 1 || aws.ToString(r[0].Destinations[0].Region) != "eu-west-1" ||
		aws.ToString(r[0].RepositoryFilters[0].Filter) != "team" {
		t.Errorf("DescribeRegistry = %+v", d.ReplicationConfiguration)
	}

	rules := func(n, destsEach int) *ecrtypes.ReplicationConfiguration {
		cfg := &ecrtypes.ReplicationConfiguration{}
		for i := range n {
			var ds []ecrtypes.ReplicationDestination
			for j := range destsEach {
				ds = append(ds, dest("eu-west-1", fmt.Sprintf("3%02d%02d0000000", i, j)))
			}
			cfg.Rules = append(cfg.Rules, ecrtypes.ReplicationRule{Destinations: ds})
		}
		return cfg
	}
	if _, err := c.PutReplicationConfiguration(ctx, &ecr.PutReplicationConfigurationInput{ReplicationConfiguration: rules(10, 2)}); err != nil {
		t.Errorf("10 rules, 20 destinations: %v", err)
	}
	for name, cfg := range map[string]*ecrtypes.ReplicationConfiguration{
		"11 rules":             rules(11, 1),
		"26 destinations":      rules(2, 13),
		"no destinations":      {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{}}}},
		"bad region":           {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest("EU_WEST", "222222222222")}}}},
		"bad registry":         {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest("eu-west-1", "2222")}}}},
		"itself":               {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest(e.Region(), e.Account())}}}},
		"filter type":          {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest("eu-west-1", "222222222222")}, RepositoryFilters: []ecrtypes.RepositoryFilter{{Filter: aws.String("team"), FilterType: "WILDCARD"}}}}},
		"filter not a prefix":  {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest("eu-west-1", "222222222222")}, RepositoryFilters: []ecrtypes.RepositoryFilter{{Filter: aws.String("Team*"), FilterType: "PREFIX_MATCH"}}}}},
		"filter one character": {Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest("eu-west-1", "222222222222")}, RepositoryFilters: []ecrtypes.RepositoryFilter{{Filter: aws.String("t"), FilterType: "PREFIX_MATCH"}}}}},
	} {
		_, err := noRetryClient(e).PutReplicationConfiguration(ctx, &ecr.PutReplicationConfigurationInput{ReplicationConfiguration: cfg})
		if apiCode(err) != "InvalidParameterException" {
			t.Errorf("%s: error = %v, want InvalidParameterException", name, err)
		}
	}
	// An empty rule list removes the configuration.
	if _, err := c.PutReplicationConfiguration(ctx, &ecr.PutReplicationConfigurationInput{ReplicationConfiguration: &ecrtypes.ReplicationConfiguration{Rules: []ecrtypes.ReplicationRule{}}}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{}); err != nil || len(d.ReplicationConfiguration.Rules) != 0 {
		t.Errorf("after removing: %+v %v", d, err)
	}
}

func scanRule(freq ecrtypes.ScanFrequency, filters ...string) ecrtypes.RegistryScanningRule {
	r := ecrtypes.RegistryScanningRule{ScanFrequency: freq, RepositoryFilters: []ecrtypes.ScanningRepositoryFilter{}}
	for _, f := range filters {
		r.RepositoryFilters = append(r.RepositoryFilters, ecrtypes.ScanningRepositoryFilter{Filter: aws.String(f), FilterType: ecrtypes.ScanningRepositoryFilterTypeWildcard})
	}
	return r
}

func TestRegistryScanningConfiguration(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	g, err := c.GetRegistryScanningConfiguration(ctx, &ecr.GetRegistryScanningConfigurationInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(g.RegistryId) != e.Account() || g.ScanningConfiguration.ScanType != ecrtypes.ScanTypeBasic || len(g.ScanningConfiguration.Rules) != 0 {
		t.Errorf("default = %+v", g.ScanningConfiguration)
	}
	p, err := c.PutRegistryScanningConfiguration(ctx, &ecr.PutRegistryScanningConfigurationInput{ScanType: ecrtypes.ScanTypeEnhanced,
		Rules: []ecrtypes.RegistryScanningRule{scanRule(ecrtypes.ScanFrequencyContinuousScan, "prod/*"), scanRule(ecrtypes.ScanFrequencyScanOnPush, "*")}})
	if err != nil {
		t.Fatal(err)
	}
	if p.RegistryScanningConfiguration.ScanType != ecrtypes.ScanTypeEnhanced || len(p.RegistryScanningConfiguration.Rules) != 2 {
		t.Errorf("answer = %+v", p.RegistryScanningConfiguration)
	}
	g, err = c.GetRegistryScanningConfiguration(ctx, &ecr.GetRegistryScanningConfigurationInput{})
	if err != nil {
		t.Fatal(err)
	}
	if r := g.ScanningConfiguration.Rules; g.ScanningConfiguration.ScanType != ecrtypes.ScanTypeEnhanced || len(r) != 2 ||
		r[0].ScanFrequency != ecrtypes.ScanFrequencyContinuousScan || aws.ToString(r[0].RepositoryFilters[0].Filter) != "prod/*" {
		t.Errorf("Get = %+v", g.ScanningConfiguration)
	}
	for name, in := range map[string]*ecr.PutRegistryScanningConfigurationInput{
		"continuous with BASIC": {ScanType: ecrtypes.ScanTypeBasic, Rules: []ecrtypes.RegistryScanningRule{scanRule(ecrtypes.ScanFrequencyContinuousScan, "*")}},
		"scan type":             {ScanType: "DEEP"},
		"frequency":             {Rules: []ecrtypes.RegistryScanningRule{scanRule("HOURLY", "*")}},
		"three rules":           {ScanType: ecrtypes.ScanTypeEnhanced, Rules: []ecrtypes.RegistryScanningRule{scanRule("MANUAL", "a"), scanRule("SCAN_ON_PUSH", "b"), scanRule("CONTINUOUS_SCAN", "c")}},
		"same frequency twice":  {Rules: []ecrtypes.RegistryScanningRule{scanRule("SCAN_ON_PUSH", "a"), scanRule("SCAN_ON_PUSH", "b")}},
		"filter":                {Rules: []ecrtypes.RegistryScanningRule{scanRule("SCAN_ON_PUSH", "Team/App")}},
		"filter type":           {Rules: []ecrtypes.RegistryScanningRule{{ScanFrequency: "SCAN_ON_PUSH", RepositoryFilters: []ecrtypes.ScanningRepositoryFilter{{Filter: aws.String("a"), FilterType: "PREFIX_MATCH"}}}}},
	} {
		_, err := c.PutRegistryScanningConfiguration(ctx, in)
		if apiCode(err) != "InvalidParameterException" {
			t.Errorf("%s: error = %v, want InvalidParameterException", name, err)
		}
	}
}

func TestBatchGetRepositoryScanningConfiguration(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app"), ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/db")})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("prod/web")})
	names := []string{"team/app", "team/db", "prod/web", "team/none"}
	get := func() map[string]ecrtypes.RepositoryScanningConfiguration {
		t.Helper()
		out, err := c.BatchGetRepositoryScanningConfiguration(ctx, &ecr.BatchGetRepositoryScanningConfigurationInput{RepositoryNames: names})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Failures) != 1 || aws.ToString(out.Failures[0].RepositoryName) != "team/none" ||
			out.Failures[0].FailureCode != ecrtypes.ScanningConfigurationFailureCodeRepositoryNotFound || aws.ToString(out.Failures[0].FailureReason) == "" {
			t.Errorf("failures = %+v", out.Failures)
		}
		got := map[string]ecrtypes.RepositoryScanningConfiguration{}
		for _, s := range out.ScanningConfigurations {
			got[aws.ToString(s.RepositoryName)] = s
		}
		return got
	}
	filters := func(s ecrtypes.RepositoryScanningConfiguration) []string {
		var out []string
		for _, f := range s.AppliedScanFilters {
			out = append(out, aws.ToString(f.Filter))
		}
		return out
	}

	// No registry rules: the repository's own scanOnPush decides.
	got := get()
	if s := got["team/app"]; !s.ScanOnPush || s.ScanFrequency != ecrtypes.ScanFrequencyScanOnPush || len(s.AppliedScanFilters) != 0 ||
		aws.ToString(s.RepositoryArn) != "arn:aws:ecr:"+e.Region()+":"+e.Account()+":repository/team/app" {
		t.Errorf("team/app = %+v", s)
	}
	if s := got["team/db"]; s.ScanOnPush || s.ScanFrequency != ecrtypes.ScanFrequencyManual {
		t.Errorf("team/db = %+v", s)
	}

	// Registry rules decide once there are any; continuous scanning wins.
	if _, err := c.PutRegistryScanningConfiguration(ctx, &ecr.PutRegistryScanningConfigurationInput{ScanType: ecrtypes.ScanTypeEnhanced,
		Rules: []ecrtypes.RegistryScanningRule{scanRule(ecrtypes.ScanFrequencyScanOnPush, "team/*", "nope"), scanRule(ecrtypes.ScanFrequencyContinuousScan, "*/db")}}); err != nil {
		t.Fatal(err)
	}
	got = get()
	if s := got["team/app"]; !s.ScanOnPush || s.ScanFrequency != ecrtypes.ScanFrequencyScanOnPush || !slices.Equal(filters(s), []string{"team/*"}) {
		t.Errorf("team/app = %+v", s)
	}
	if s := got["team/db"]; !s.ScanOnPush || s.ScanFrequency != ecrtypes.ScanFrequencyContinuousScan || !slices.Equal(filters(s), []string{"*/db"}) {
		t.Errorf("team/db = %+v", s)
	}
	if s := got["prod/web"]; s.ScanOnPush || s.ScanFrequency != ecrtypes.ScanFrequencyManual || len(s.AppliedScanFilters) != 0 {
		t.Errorf("prod/web = %+v", s)
	}

	many := make([]string, 26)
	for i := range many {
		many[i] = fmt.Sprintf("r/%d0", i)
	}
	for _, in := range [][]string{{}, many, {"Bad Name"}} {
		_, err := c.BatchGetRepositoryScanningConfiguration(ctx, &ecr.BatchGetRepositoryScanningConfigurationInput{RepositoryNames: in})
		wantCode(t, err, "InvalidParameterException")
	}
}

func TestUpdateRepositoryCreationTemplate(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := ecrClient(e)
	created, err := c.CreateRepositoryCreationTemplate(ctx, &ecr.CreateRepositoryCreationTemplateInput{Prefix: aws.String("team"),
		Description: aws.String("first"), AppliedFor: []ecrtypes.RCTAppliedFor{ecrtypes.RCTAppliedForCreateOnPush},
		ResourceTags: []ecrtypes.Tag{{Key: aws.String("team"), Value: aws.String("platform")}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.UpdateRepositoryCreationTemplate(ctx, &ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team/"),
		ImageTagMutability:                 ecrtypes.ImageTagMutabilityImmutableWithExclusion,
		ImageTagMutabilityExclusionFilters: []ecrtypes.ImageTagMutabilityExclusionFilter{{FilterType: "WILDCARD", Filter: aws.String("latest")}},
		LifecyclePolicy:                    aws.String(lifecycle)})
	if err != nil {
		t.Fatal(err)
	}
	tpl := out.RepositoryCreationTemplate
	if aws.ToString(out.RegistryId) != e.Account() || aws.ToString(tpl.Prefix) != "team" || aws.ToString(tpl.Description) != "first" ||
		len(tpl.ResourceTags) != 1 || tpl.ImageTagMutability != ecrtypes.ImageTagMutabilityImmutableWithExclusion ||
		aws.ToString(tpl.LifecyclePolicy) != lifecycle || !tpl.CreatedAt.Equal(*created.RepositoryCreationTemplate.CreatedAt) ||
		tpl.UpdatedAt.Before(*tpl.CreatedAt) {
		t.Errorf("updated template = %+v", tpl)
	}
	d, err := c.DescribeRepositoryCreationTemplates(ctx, &ecr.DescribeRepositoryCreationTemplatesInput{Prefixes: []string{"team"}})
	if err != nil || len(d.RepositoryCreationTemplates) != 1 || d.RepositoryCreationTemplates[0].ImageTagMutability != ecrtypes.ImageTagMutabilityImmutableWithExclusion {
		t.Fatalf("Describe: %+v %v", d, err)
	}

	// The updated template is what create on push applies.
	rc := newRegClient(t, e)
	if err := rc.push(t, "team/new:1", randomImage(t)); err != nil {
		t.Fatal(err)
	}
	wantRegistryError(t, rc.push(t, "team/new:1", randomImage(t)), "TAG_INVALID", "")
	if err := rc.push(t, "team/new:latest", randomImage(t)); err != nil {
		t.Fatal(err)
	}
	if err := rc.push(t, "team/new:latest", randomImage(t)); err != nil {
		t.Errorf("excluded tag refused: %v", err)
	}

	// Clearing a field with an empty value; changing the mutability drops
	// the old filters.
	out, err = c.UpdateRepositoryCreationTemplate(ctx, &ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"),
		Description: aws.String(""), ImageTagMutability: ecrtypes.ImageTagMutabilityMutable})
	if err != nil {
		t.Fatal(err)
	}
	if tpl := out.RepositoryCreationTemplate; tpl.Description != nil || tpl.ImageTagMutability != ecrtypes.ImageTagMutabilityMutable || len(tpl.ImageTagMutabilityExclusionFilters) != 0 {
		t.Errorf("after clearing = %+v", tpl)
	}

	for name, tc := range map[string]struct {
		in   ecr.UpdateRepositoryCreationTemplateInput
		code string
	}{
		"missing":             {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("other")}, "TemplateNotFoundException"},
		"bad prefix":          {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("Team")}, "InvalidParameterException"},
		"filters needed":      {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutableWithExclusion}, "InvalidParameterException"},
		"empty appliedFor":    {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"), AppliedFor: []ecrtypes.RCTAppliedFor{}}, "InvalidParameterException"},
		"short lifecycle":     {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"), LifecyclePolicy: aws.String(`{"rules":[]}`)}, "InvalidParameterException"},
		"reserved tag":        {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"), ResourceTags: []ecrtypes.Tag{{Key: aws.String("aws:x"), Value: aws.String("y")}}}, "InvalidTagParameterException"},
		"encryption type":     {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"), EncryptionConfiguration: &ecrtypes.EncryptionConfigurationForRepositoryCreationTemplate{EncryptionType: "ROT13"}}, "InvalidParameterException"},
		"policy not a policy": {ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team"), RepositoryPolicy: aws.String(`{}`)}, "InvalidParameterException"},
	} {
		_, err := c.UpdateRepositoryCreationTemplate(ctx, &tc.in)
		if apiCode(err) != tc.code {
			t.Errorf("%s: error = %v, want %s", name, err, tc.code)
		}
	}
	// A refused update changes nothing.
	d, err = c.DescribeRepositoryCreationTemplates(ctx, &ecr.DescribeRepositoryCreationTemplatesInput{Prefixes: []string{"team"}})
	if err != nil || aws.ToString(d.RepositoryCreationTemplates[0].LifecyclePolicy) != lifecycle || len(d.RepositoryCreationTemplates[0].AppliedFor) != 1 {
		t.Errorf("after refused updates: %+v %v", d, err)
	}
}

const dockerHubSecret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"

func TestPullThroughCacheRules(t *testing.T) {
	ctx := context.Background()
	e := ecrfake.Start(t, ecrfake.Options{})
	c := noRetryClient(e)
	out, err := c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("docker-hub"),
		UpstreamRegistryUrl: aws.String("registry-1.docker.io"), UpstreamRegistry: ecrtypes.UpstreamRegistryDockerHub, CredentialArn: aws.String(dockerHubSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.EcrRepositoryPrefix) != "docker-hub" || aws.ToString(out.RegistryId) != e.Account() || out.UpstreamRegistry != ecrtypes.UpstreamRegistryDockerHub ||
		aws.ToString(out.CredentialArn) != dockerHubSecret || out.CreatedAt == nil || aws.ToString(out.UpstreamRegistryUrl) != "registry-1.docker.io" {
		t.Errorf("Create = %+v", out)
	}
	// The upstream registry is inferred from the URL.
	q, err := c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("quay/"), UpstreamRegistryUrl: aws.String("quay.io")})
	if err != nil || q.UpstreamRegistry != ecrtypes.UpstreamRegistryQuay || aws.ToString(q.EcrRepositoryPrefix) != "quay" {
		t.Fatalf("quay: %+v %v", q, err)
	}
	if _, err := c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("ecr-public"), UpstreamRegistryUrl: aws.String("public.ecr.aws")}); err != nil {
		t.Fatal(err)
	}
	x, err := c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("other-account"),
		UpstreamRegistryUrl: aws.String("222222222222.dkr.ecr.eu-west-1.amazonaws.com"), CustomRoleArn: aws.String("arn:aws:iam::123456789012:role/ptc")})
	if err != nil || x.UpstreamRegistry != ecrtypes.UpstreamRegistryEcr || aws.ToString(x.UpstreamRepositoryPrefix) != "ROOT" {
		t.Fatalf("ecr upstream: %+v %v", x, err)
	}

	for name, tc := range map[string]struct {
		in   ecr.CreatePullThroughCacheRuleInput
		code string
	}{
		"exists":           {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("quay"), UpstreamRegistryUrl: aws.String("quay.io")}, "PullThroughCacheRuleAlreadyExistsException"},
		"unknown upstream": {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("mine"), UpstreamRegistryUrl: aws.String("registry.example.com")}, "UnsupportedUpstreamRegistryException"},
		"url mismatch":     {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("mine"), UpstreamRegistryUrl: aws.String("quay.io"), UpstreamRegistry: ecrtypes.UpstreamRegistryK8s}, "UnsupportedUpstreamRegistryException"},
		"no credential":    {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("ghcr"), UpstreamRegistryUrl: aws.String("ghcr.io")}, "InvalidParameterException"},
		"bad credential":   {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("ghcr"), UpstreamRegistryUrl: aws.String("ghcr.io"), CredentialArn: aws.String("arn:aws:secretsmanager:us-east-1:123456789012:secret:mine-000000000000")}, "InvalidParameterException"},
		"azure no cred":    {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("azure"), UpstreamRegistryUrl: aws.String("myreg.azurecr.io")}, "InvalidParameterException"},
		"gitlab no cred":   {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("gitlab"), UpstreamRegistryUrl: aws.String("registry.gitlab.com")}, "InvalidParameterException"},
		"ecr no role":      {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("mine"), UpstreamRegistryUrl: aws.String("222222222222.dkr.ecr.eu-west-1.amazonaws.com")}, "InvalidParameterException"},
		"prefix case":      {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("Mine"), UpstreamRegistryUrl: aws.String("quay.io")}, "InvalidParameterException"},
		"prefix short":     {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("m"), UpstreamRegistryUrl: aws.String("quay.io")}, "InvalidParameterException"},
		"prefix long":      {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String(strings.Repeat("m", 31)), UpstreamRegistryUrl: aws.String("quay.io")}, "InvalidParameterException"},
		"upstream prefix":  {ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("mine"), UpstreamRegistryUrl: aws.String("quay.io"), UpstreamRepositoryPrefix: aws.String("team")}, "InvalidParameterException"},
	} {
		_, err := c.CreatePullThroughCacheRule(ctx, &tc.in)
		if apiCode(err) != tc.code {
			t.Errorf("%s: error = %v, want %s", name, err, tc.code)
		}
	}

	// Describe: all, by prefix, paged.
	var all []string
	for p := ecr.NewDescribePullThroughCacheRulesPaginator(c, &ecr.DescribePullThroughCacheRulesInput{MaxResults: aws.Int32(1)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.PullThroughCacheRules) > 1 {
			t.Fatalf("page of %d", len(page.PullThroughCacheRules))
		}
		for _, r := range page.PullThroughCacheRules {
			all = append(all, aws.ToString(r.EcrRepositoryPrefix))
		}
	}
	if want := []string{"docker-hub", "ecr-public", "other-account", "quay"}; !slices.Equal(all, want) {
		t.Errorf("rules = %v, want %v", all, want)
	}
	d, err := c.DescribePullThroughCacheRules(ctx, &ecr.DescribePullThroughCacheRulesInput{EcrRepositoryPrefixes: []string{"docker-hub/"}})
	if err != nil || len(d.PullThroughCacheRules) != 1 || d.PullThroughCacheRules[0].UpstreamRegistry != ecrtypes.UpstreamRegistryDockerHub ||
		aws.ToString(d.PullThroughCacheRules[0].CredentialArn) != dockerHubSecret {
		t.Fatalf("Describe docker-hub: %+v %v", d, err)
	}
	_, err = c.DescribePullThroughCacheRules(ctx, &ecr.DescribePullThroughCacheRulesInput{EcrRepositoryPrefixes: []string{"docker-hub", "nope"}})
	wantCode(t, err, "PullThroughCacheRuleNotFoundException")

	// Update and validate.
	newSecret := strings.Replace(dockerHubSecret, "AbCdEf", "GhIjKl", 1)
	u, err := c.UpdatePullThroughCacheRule(ctx, &ecr.UpdatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("docker-hub"), CredentialArn: aws.String(newSecret)})
	if err != nil || aws.ToString(u.CredentialArn) != newSecret || u.UpdatedAt == nil {
		t.Fatalf("Update: %+v %v", u, err)
	}
	_, err = c.UpdatePullThroughCacheRule(ctx, &ecr.UpdatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("docker-hub"), CredentialArn: aws.String("")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.UpdatePullThroughCacheRule(ctx, &ecr.UpdatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("nope"), CredentialArn: aws.String(newSecret)})
	wantCode(t, err, "PullThroughCacheRuleNotFoundException")
	v, err := c.ValidatePullThroughCacheRule(ctx, &ecr.ValidatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("docker-hub")})
	if err != nil || !v.IsValid || aws.ToString(v.CredentialArn) != newSecret || aws.ToString(v.UpstreamRegistryUrl) != "registry-1.docker.io" {
		t.Fatalf("Validate: %+v %v", v, err)
	}
	_, err = c.ValidatePullThroughCacheRule(ctx, &ecr.ValidatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("nope")})
	wantCode(t, err, "PullThroughCacheRuleNotFoundException")

	// Delete.
	del, err := c.DeletePullThroughCacheRule(ctx, &ecr.DeletePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("docker-hub")})
	if err != nil || aws.ToString(del.EcrRepositoryPrefix) != "docker-hub" || aws.ToString(del.CredentialArn) != newSecret {
		t.Fatalf("Delete: %+v %v", del, err)
	}
	_, err = c.DeletePullThroughCacheRule(ctx, &ecr.DeletePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("docker-hub")})
	wantCode(t, err, "PullThroughCacheRuleNotFoundException")

	// ECR's quota: 50 rules per registry.
	for i := 3; i < 50; i++ {
		if _, err := c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String(fmt.Sprintf("k8s-%02d", i)), UpstreamRegistryUrl: aws.String("registry.k8s.io")}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("k8s-50"), UpstreamRegistryUrl: aws.String("registry.k8s.io")})
	wantCode(t, err, "LimitExceededException")
}

// TestSettingsPersistAndDeny checks that the settings survive a restart and
// that DenyAction reaches every family of operations.
func TestSettingsPersistAndDeny(t *testing.T) {
	ctx := context.Background()
	opts := ecrfake.Options{StorageDir: t.TempDir(), Users: []ecrfake.User{{Name: "ci", AccessKey: "AKIACI00000000000000", SecretKey: "ci-secret"}}}
	e1, err := ecrfake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := startServer(t, e1)
	c := ecrClient(e1)
	createRepo(t, e1, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	steps := []error{}
	_, err = c.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"), ImageTagMutability: ecrtypes.ImageTagMutabilityImmutable})
	steps = append(steps, err)
	_, err = c.PutReplicationConfiguration(ctx, &ecr.PutReplicationConfigurationInput{ReplicationConfiguration: &ecrtypes.ReplicationConfiguration{
		Rules: []ecrtypes.ReplicationRule{{Destinations: []ecrtypes.ReplicationDestination{dest("eu-west-1", e1.Account())}}}}})
	steps = append(steps, err)
	_, err = c.PutRegistryScanningConfiguration(ctx, &ecr.PutRegistryScanningConfigurationInput{ScanType: ecrtypes.ScanTypeBasic,
		Rules: []ecrtypes.RegistryScanningRule{scanRule(ecrtypes.ScanFrequencyScanOnPush, "team/*")}})
	steps = append(steps, err)
	_, err = c.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("quay"), UpstreamRegistryUrl: aws.String("quay.io")})
	steps = append(steps, err)
	rc := newRegClient(t, e1)
	img := randomImage(t)
	if err := rc.push(t, "team/app:1", img); err != nil { // scanned on push by the registry rule
		t.Fatal(err)
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	stop()

	e2 := ecrfake.Start(t, opts)
	c = ecrClient(e2)
	if r, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/app"}}); err != nil || r.Repositories[0].ImageTagMutability != ecrtypes.ImageTagMutabilityImmutable {
		t.Errorf("mutability after restart: %+v %v", r, err)
	}
	if d, err := c.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{}); err != nil || len(d.ReplicationConfiguration.Rules) != 1 {
		t.Errorf("replication after restart: %+v %v", d, err)
	}
	if g, err := c.GetRegistryScanningConfiguration(ctx, &ecr.GetRegistryScanningConfigurationInput{}); err != nil || len(g.ScanningConfiguration.Rules) != 1 {
		t.Errorf("scanning after restart: %+v %v", g, err)
	}
	if p, err := c.DescribePullThroughCacheRules(ctx, &ecr.DescribePullThroughCacheRulesInput{}); err != nil || len(p.PullThroughCacheRules) != 1 {
		t.Errorf("pull-through-cache rules after restart: %+v %v", p, err)
	}
	if f, err := c.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{RepositoryName: aws.String("team/app"),
		ImageId: &ecrtypes.ImageIdentifier{ImageTag: aws.String("1")}}); err != nil || f.ImageScanStatus.Status != ecrtypes.ScanStatusComplete {
		t.Errorf("scan after restart: %+v %v", f, err)
	}

	const ci = "arn:aws:iam::123456789012:user/ci"
	denied := ecr.NewFromConfig(sdkConfig(e2, "AKIACI00000000000000", "ci-secret"))
	for action, call := range map[string]func() error{
		"ecr:PutImageTagMutability": func() error {
			_, err := denied.PutImageTagMutability(ctx, &ecr.PutImageTagMutabilityInput{RepositoryName: aws.String("team/app"), ImageTagMutability: ecrtypes.ImageTagMutabilityMutable})
			return err
		},
		"ecr:DescribeRegistry": func() error { _, err := denied.DescribeRegistry(ctx, &ecr.DescribeRegistryInput{}); return err },
		"ecr:GetRegistryScanningConfiguration": func() error {
			_, err := denied.GetRegistryScanningConfiguration(ctx, &ecr.GetRegistryScanningConfigurationInput{})
			return err
		},
		"ecr:CreatePullThroughCacheRule": func() error {
			_, err := denied.CreatePullThroughCacheRule(ctx, &ecr.CreatePullThroughCacheRuleInput{EcrRepositoryPrefix: aws.String("k8s"), UpstreamRegistryUrl: aws.String("registry.k8s.io")})
			return err
		},
		"ecr:UpdateRepositoryCreationTemplate": func() error {
			_, err := denied.UpdateRepositoryCreationTemplate(ctx, &ecr.UpdateRepositoryCreationTemplateInput{Prefix: aws.String("team")})
			return err
		},
		"ecr:StartImageScan": func() error {
			_, err := denied.StartImageScan(ctx, &ecr.StartImageScanInput{RepositoryName: aws.String("team/app"), ImageId: &ecrtypes.ImageIdentifier{ImageTag: aws.String("1")}})
			return err
		},
	} {
		if err := call(); apiCode(err) == "AccessDeniedException" {
			t.Errorf("%s denied before DenyAction: %v", action, err)
		}
		e2.DenyAction(ci, action)
		err := call()
		wantCode(t, err, "AccessDeniedException")
		if !strings.Contains(err.Error(), "not authorized to perform: "+action) {
			t.Errorf("%s: message = %v", action, err)
		}
	}
}
