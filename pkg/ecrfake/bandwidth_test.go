package ecrfake_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

// The upload handlers count the bytes they read and, with
// UploadBandwidth, read no faster than it allows.
func TestUploadBandwidthAndBytes(t *testing.T) {
	const rate = 1 << 20 // bytes per second
	e := ecrfake.Start(t, ecrfake.Options{UploadBandwidth: rate})
	createRepo(t, e, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	rc := newRegClient(t, e)
	img, err := random.Image(1<<20, 2) // two 1 MiB layers and a config
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := rc.push(t, "team/app:1", img); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	got := e.UploadBytes()
	if got < 2<<20 || got > 3<<20 {
		t.Errorf("UploadBytes() = %d after pushing two 1 MiB layers, want about %d", got, 2<<20)
	}
	// 2 MiB at 1 MiB/s: two seconds, less the bucket's small burst.
	if min := 1800 * time.Millisecond; took < min {
		t.Errorf("push of 2 MiB at %d B/s took %v, want at least %v", rate, took, min)
	}

	e.SetUploadBandwidth(0)
	img2, err := random.Image(1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := rc.push(t, "team/app:2", img2); err != nil {
		t.Fatal(err)
	}
	if unlimited := time.Since(start); unlimited > took/2 {
		t.Errorf("unlimited push of 2 MiB took %v, the limited one %v", unlimited, took)
	}
	if d := e.UploadBytes() - got; d < 2<<20 {
		t.Errorf("second push added %d upload bytes, want at least %d", d, 2<<20)
	}
}
