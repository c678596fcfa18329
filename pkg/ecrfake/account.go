package ecrfake

// TODO(#14): stubs until implemented.

func opGetAccountSetting(c *call) (any, error) { return nil, errNotImplemented(c) }

func opPutAccountSetting(c *call) (any, error) { return nil, errNotImplemented(c) }

func opGetRegistryPolicy(c *call) (any, error) { return nil, errNotImplemented(c) }

func opPutRegistryPolicy(c *call) (any, error) { return nil, errNotImplemented(c) }

func opDeleteRegistryPolicy(c *call) (any, error) { return nil, errNotImplemented(c) }
