package ecrfake

// TODO(#14): stubs until implemented.

type imageScan struct{}

func opStartImageScan(c *call) (any, error) { return nil, errNotImplemented(c) }

func opDescribeImageScanFindings(c *call) (any, error) { return nil, errNotImplemented(c) }
