package gate

import "github.com/wardgate/wardgate/trust"

// Trust is the trust configuration the gate evaluates under. The caller
// must not modify it.
func (g *Gate) Trust() *trust.Config { return g.trust }
