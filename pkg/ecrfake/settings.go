package ecrfake

// TODO(#14): stubs until implemented.

type registryScanning struct{}

type replicationConfiguration struct{}

type pullThroughCacheRule struct{}

func opPutImageTagMutability(c *call) (any, error) { return nil, errNotImplemented(c) }

func opPutImageScanningConfiguration(c *call) (any, error) { return nil, errNotImplemented(c) }

func opDescribeRegistry(c *call) (any, error) { return nil, errNotImplemented(c) }

func opGetRegistryScanningConfiguration(c *call) (any, error) { return nil, errNotImplemented(c) }

func opPutRegistryScanningConfiguration(c *call) (any, error) { return nil, errNotImplemented(c) }

func opPutReplicationConfiguration(c *call) (any, error) { return nil, errNotImplemented(c) }

func opBatchGetRepositoryScanningConfiguration(c *call) (any, error) {
	return nil, errNotImplemented(c)
}

func opUpdateTemplate(c *call) (any, error) { return nil, errNotImplemented(c) }

func opCreatePullThroughCacheRule(c *call) (any, error) { return nil, errNotImplemented(c) }

func opDescribePullThroughCacheRules(c *call) (any, error) { return nil, errNotImplemented(c) }

func opDeletePullThroughCacheRule(c *call) (any, error) { return nil, errNotImplemented(c) }

func opUpdatePullThroughCacheRule(c *call) (any, error) { return nil, errNotImplemented(c) }

func opValidatePullThroughCacheRule(c *call) (any, error) { return nil, errNotImplemented(c) }
