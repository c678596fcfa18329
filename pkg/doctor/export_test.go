package doctor_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/doctor"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// A native template that is the local one as `ecrgate templates export`
// wrote it is no overlap to warn of; once it drifts, it is.
func TestNativeTemplatesAsExported(t *testing.T) {
	f := setup(t, "templates:\n  - prefix: team\n    image_tag_mutability: IMMUTABLE\n    pull_accounts: [\"222222222222\"]\n")
	cfg, err := config.Load(f.o.ConfigPath, f.o.Env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	x, err := repocreate.ExportTemplates(ctx, repocreate.ExportOptions{Config: cfg, Registry: reg, Env: f.o.Env})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	f.e.ResetCalls() // the doctor's own calls are counted from here
	want(t, f.run(t), "native templates "+reg, doctor.OK, `"team" are the local ones as ecrgate templates export makes them`)

	if _, err := f.api().UpdateRepositoryCreationTemplate(ctx, &ecr.UpdateRepositoryCreationTemplateInput{
		Prefix: aws.String("team"), ImageTagMutability: types.ImageTagMutabilityMutable}); err != nil {
		t.Fatal(err)
	}
	f.e.ResetCalls()
	r := want(t, f.run(t), "native templates "+reg, doctor.Warn, `native "team" overlaps local "team"`)
	if !strings.Contains(r.Fix, "ecrgate templates export --apply") {
		t.Errorf("fix %q does not name templates export", r.Fix)
	}
}
