package cni

// PrepareNode creates the node's bridge with its gateway address (and the
// unreachable route for the service range) before any container exists, so
// that services bound to the gateway — the node's DNS server — can start
// at once. The plugin's ADD does the same lazily; both are idempotent.
func PrepareNode(c NetConf) error {
	conf, err := validate(c.withDefaults())
	if err != nil {
		return err
	}
	_, err = ensureBridge(conf)
	return err
}
