//go:build !pkcs11key

package attest

import "crypto"

// PKCS11 reports whether this build can use PKCS#11 tokens.
const PKCS11 = false

func generateInToken(string) (crypto.PublicKey, error) { return nil, errNoPKCS11 }
