package repocreate_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/ecrname"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// FuzzEnsureNeverCreatesDenied drives the ensurer against the emulator with
// any name: a name ecrname refuses makes no AWS call at all; a name the
// allow/deny rules refuse is never created (DENIED, unless it already
// exists); an admitted valid name exists afterwards.
func FuzzEnsureNeverCreatesDenied(f *testing.F) {
	e := ecrfake.Start(f, ecrfake.Options{})
	cfg, err := config.Parse([]byte("allow: [\"team/**\", \"tools/*\"]\ndeny: [\"*/tmp*\", \"**/secret\"]\n"), "fuzz.yaml", nil)
	if err != nil {
		f.Fatal(err)
	}
	ens, err := repocreate.New(repocreate.Options{Config: cfg, Clients: clientsFor(e), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ens.Close() })
	// A denied name that exists already is not refused.
	if _, err := sdkClient(e).CreateRepository(context.Background(), &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/tmp-old")}); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"team/tmp1", "team/tmp-old", "team/app", "team/a/b/secret", "tools/x", "tools/x/y", "other/app",
		"..", "a/../b", "%2e%2e", "Team/App", strings.Repeat("a", 257), "a//b", "team/", "ünïcödé", "team/app\x00", "team/a\r\nb"} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name string) {
		before := e.CallCounts()
		_, existed := e.Repository("", name)
		err := ens.Ensure(ctx, reg, name)
		var ec errcode.Error
		if err != nil && !errors.As(err, &ec) {
			t.Fatalf("Ensure(%q) error %v (%T) is not an errcode.Error", name, err, err)
		}
		if ecrname.ValidateRepository(name) != nil {
			if err == nil || ec.Code != errcode.ErrorCodeNameInvalid {
				t.Fatalf("Ensure(%q) = %v, want NAME_INVALID", name, err)
			}
			if after := e.CallCounts(); len(after) != len(before) || after["DescribeRepositories"] != before["DescribeRepositories"] {
				t.Fatalf("Ensure(%q) of an invalid name called AWS: %v then %v", name, before, after)
			}
			return
		}
		_, exists := e.Repository("", name)
		ok, rule := cfg.Allowed(name)
		switch {
		case existed:
			if err != nil {
				t.Fatalf("Ensure(%q) of an existing repository = %v", name, err)
			}
		case !ok:
			if err == nil || ec.Code != errcode.ErrorCodeDenied || exists || e.Calls("CreateRepository") != before["CreateRepository"] {
				t.Fatalf("Ensure(%q) refused by %q = %v; exists afterwards: %v", name, rule, err, exists)
			}
		default:
			if err != nil || !exists {
				t.Fatalf("Ensure(%q) admitted by %q = %v; exists afterwards: %v", name, rule, err, exists)
			}
		}
	})
}
