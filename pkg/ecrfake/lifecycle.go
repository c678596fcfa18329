package ecrfake

// TODO(#14): stubs until implemented.

type lifecyclePreview struct{}

func opStartLifecyclePolicyPreview(c *call) (any, error) { return nil, errNotImplemented(c) }

func opGetLifecyclePolicyPreview(c *call) (any, error) { return nil, errNotImplemented(c) }
