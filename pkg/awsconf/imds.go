package awsconf

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// IMDSTimeout bounds each instance-metadata call. On an EC2 instance the
// metadata service answers in milliseconds; off EC2, the SDK's defaults
// (retries with backoff) made a machine without credentials wait about 5 s,
// and awslabs' helper waits up to a minute when the address swallows
// packets. With this bound a get without credentials fails in under 2 s.
const IMDSTimeout = 1500 * time.Millisecond

// boundedIMDS is the instance-metadata client for EC2 role credentials,
// configured from the same environment variables the SDK reads, with a
// deadline on each call that lasts until the caller closes the content.
type boundedIMDS struct {
	c       *imds.Client
	timeout time.Duration
}

func newBoundedIMDS(env map[string]string) *boundedIMDS {
	o := imds.Options{}
	if strings.EqualFold(env["AWS_EC2_METADATA_DISABLED"], "true") {
		o.ClientEnableState = imds.ClientDisabled
	}
	if ep := env["AWS_EC2_METADATA_SERVICE_ENDPOINT"]; ep != "" {
		o.Endpoint = ep
	}
	if strings.EqualFold(env["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"], "IPv6") {
		o.EndpointMode = imds.EndpointModeStateIPv6
	}
	return &boundedIMDS{c: imds.New(o), timeout: IMDSTimeout}
}

func (b *boundedIMDS) GetMetadata(ctx context.Context, in *imds.GetMetadataInput, optFns ...func(*imds.Options)) (*imds.GetMetadataOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	out, err := b.c.GetMetadata(ctx, in, optFns...)
	if err != nil {
		cancel()
		return nil, err
	}
	out.Content = &cancelOnClose{ReadCloser: out.Content, cancel: cancel}
	return out, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
