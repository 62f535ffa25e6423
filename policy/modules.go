package policy

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/wardgate/wardgate/trust"
)

//go:embed rego/*.rego
var regoFS embed.FS

// MaxModuleBytes bounds one Rego file read from a policy directory.
const MaxModuleBytes = 1 << 20

// module is one parsed Rego file.
type module struct {
	path string // for messages: a file path, "rego/x.rego" for defaults, "b.tar.gz:/x.rego" for bundles
	raw  []byte
	mod  *ast.Module
}

// pkg is the module's package without the "data." prefix.
func (m module) pkg() string { return strings.TrimPrefix(m.mod.Package.Path.String(), "data.") }

func isTest(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// CompileError is a Rego parse or compile error at a file and line.
type CompileError struct {
	File    string
	Line    int
	Message string
}

func (e *CompileError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message) }

// OverrideError is returned when a user module replaces a default policy
// package without permission.
type OverrideError struct {
	File    string
	Package string
}

func (e *OverrideError) Error() string {
	return fmt.Sprintf("%s: package %s replaces a default policy; declare it in the module (a package METADATA block with custom: {override: true}) or set allow_override: true in the trust configuration", e.File, e.Package)
}

// ErrReservedPackage is wrapped when a user module uses the package the
// trust configuration occupies.
var ErrReservedPackage = errors.New("policy: package trust is reserved for the trust configuration (data.trust)")

// compileErrors turns OPA's errors into CompileErrors naming file and line.
func compileErrors(err error) error {
	var aes ast.Errors
	if !errors.As(err, &aes) {
		return err
	}
	out := make([]error, 0, len(aes))
	for _, e := range aes {
		ce := &CompileError{Message: e.Code + ": " + e.Message}
		if e.Location != nil {
			ce.File, ce.Line = e.Location.File, e.Location.Row
		}
		out = append(out, ce)
	}
	return errors.Join(out...)
}

func parse(name string, raw []byte) (module, error) {
	m, err := ast.ParseModuleWithOpts(name, string(raw), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		return module{}, compileErrors(err)
	}
	if m.Package.Path.String() == "data.trust" || strings.HasPrefix(m.Package.Path.String(), "data.trust.") {
		return module{}, fmt.Errorf("%s: %w", name, ErrReservedPackage)
	}
	return module{path: name, raw: raw, mod: m}, nil
}

// defaultModules parses the embedded default policies.
func defaultModules(tests bool) ([]module, error) {
	entries, err := regoFS.ReadDir("rego")
	if err != nil {
		return nil, err
	}
	var out []module
	for _, e := range entries {
		if isTest(e.Name()) && !tests {
			continue
		}
		name := path.Join("rego", e.Name())
		raw, err := regoFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		m, err := parse(name, raw)
		if err != nil {
			return nil, fmt.Errorf("default policy: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// dirModules parses every .rego file under dir, recursively, in lexical
// order.
func dirModules(dir string, tests bool) ([]module, error) {
	var out []module
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".rego") || (isTest(p) && !tests) {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		raw, err := readLimited(p, MaxModuleBytes)
		if err != nil {
			return err
		}
		m, err := parse(p, raw)
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy directory %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("policy directory %s: no .rego files", dir)
	}
	return out, nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return os.ReadFile(p)
}

// bundleModules reads an OPA bundle (.tar.gz) with OPA's bundle reader and
// returns its modules and data. With a key, the bundle must be signed with
// it (OPA checks the signature and every file's hash); without one, a
// signed bundle is refused: a signature that cannot be checked is not
// ignored.
func bundleModules(p string, tests bool, key *bundleKey) ([]module, map[string]any, error) {
	b, err := readBundle(p, key)
	if err != nil {
		return nil, nil, err
	}
	var out []module
	for _, mf := range b.Modules {
		if isTest(mf.Path) && !tests {
			continue
		}
		m, err := parse(p+":"+mf.Path, mf.Raw)
		if err != nil {
			return nil, nil, fmt.Errorf("bundle: %w", err)
		}
		out = append(out, m)
	}
	for _, k := range []string{"trust", "wardgate"} {
		if _, ok := b.Data[k]; ok {
			return nil, nil, fmt.Errorf("bundle %s: data.%s is reserved; bundle data may not set it", p, k)
		}
	}
	return out, b.Data, nil
}

// readBundle reads the bundle at p, verifying its signature with key.
func readBundle(p string, key *bundleKey) (bundle.Bundle, error) {
	f, err := os.Open(p)
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	l := &signatureLoader{DirectoryLoader: bundle.NewTarballLoaderWithBaseURL(f, "")}
	r := bundle.NewCustomReader(l).WithRegoVersion(ast.RegoV1).WithProcessAnnotations(true)
	if key != nil {
		r = r.WithBundleVerificationConfig(key.vc)
	}
	b, err := r.Read()
	if serr := l.signatureError(p, key, err != nil); serr != nil {
		return bundle.Bundle{}, serr
	}
	if err != nil {
		return bundle.Bundle{}, fmt.Errorf("bundle %s: %w", p, compileErrors(err))
	}
	return b, nil
}

// signatureLoader is OPA's tarball loader, noting whether the bundle
// carries a signatures file and keeping its content.
type signatureLoader struct {
	bundle.DirectoryLoader
	signed         bool // a signatures file was listed
	signatures     []byte
	signaturesPath string
	listed         bool // every file was listed
}

// NextFile is the tarball loader's, with the (first) signatures file
// copied, up to MaxModuleBytes, before OPA reads it.
func (l *signatureLoader) NextFile() (*bundle.Descriptor, error) {
	d, err := l.DirectoryLoader.NextFile()
	if errors.Is(err, io.EOF) {
		l.listed = true
	}
	if err != nil || l.signed || !bundle.IsSignaturesFile(d.Path()) {
		return d, err
	}
	defer d.Close()
	var buf bytes.Buffer
	if n, err := d.Read(&buf, MaxModuleBytes+1); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	} else if n > MaxModuleBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", d.Path(), MaxModuleBytes)
	}
	l.signed, l.signatures, l.signaturesPath = true, bytes.Clone(buf.Bytes()), strings.TrimPrefix(d.Path(), "/")
	return bundle.NewDescriptor(d.URL(), d.Path(), &buf), nil
}

// signatureError says what is wrong with the signature of the bundle at
// p, after OPA's reader read it: signed without a key, unsigned with one,
// or, when reading failed, a signature that does not verify with the key.
// It is nil when the signature is not the problem.
func (l *signatureLoader) signatureError(p string, key *bundleKey, readFailed bool) error {
	switch {
	case key == nil && l.signed:
		return fmt.Errorf("bundle %s is signed (%s) but no bundle key was given; pass the signer's public key (--policy-key) to verify it: wardgate does not load a bundle whose signature it cannot check", p, l.signaturesPath)
	case key != nil && l.listed && !l.signed:
		return fmt.Errorf("bundle %s is not signed (no .signatures.json), and the bundle key %s requires a signature on every bundle (opa build --signing-key)", p, key.path)
	case key != nil && l.signed && readFailed:
		if err := key.verify(l.signatures); err != nil {
			return fmt.Errorf("bundle %s: signature does not verify with the bundle key %s: %w", p, key.path, err)
		}
	}
	return nil
}

// bundleKeyID names the key in OPA's verification configuration. It is
// the only key, so a signature's own key ID ("kid") is not consulted.
const bundleKeyID = "wardgate-policy-key"

// bundleKey is the public key every bundle must be signed with.
type bundleKey struct {
	path string
	vc   *bundle.VerificationConfig
}

// loadBundleKey reads a PEM public key (PKIX, "PUBLIC KEY") and makes
// OPA's verification configuration for it, with the signature algorithm
// its type implies.
func loadBundleKey(p string) (*bundleKey, error) {
	raw, err := readLimited(p, trust.MaxKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("bundle key: %w", err)
	}
	block, _ := pem.Decode(raw)
	switch {
	case block == nil:
		return nil, fmt.Errorf("bundle key %s: not PEM; want a PEM public key (-----BEGIN PUBLIC KEY-----)", p)
	case block.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("bundle key %s: a PEM %q block; want PUBLIC KEY, the public half (openssl pkey -in KEY -pubout)", p, block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bundle key %s: %w", p, err)
	}
	alg, err := signatureAlgorithm(pub)
	if err != nil {
		return nil, fmt.Errorf("bundle key %s: %w", p, err)
	}
	kc := &bundle.KeyConfig{Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: block.Bytes})), Algorithm: alg}
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{bundleKeyID: kc}, bundleKeyID, "", nil)
	return &bundleKey{path: p, vc: vc}, nil
}

// signatureAlgorithm is the JWS algorithm a bundle signed with the key's
// private half uses: ES256, ES384 or ES512 for ECDSA P-256, P-384 or P-521,
// RS256 for RSA (opa build's default).
func signatureAlgorithm(pub any) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", fmt.Errorf("ECDSA curve %s cannot verify OPA bundle signatures; want P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return "RS256", nil
	}
	return "", fmt.Errorf("key type %T cannot verify OPA bundle signatures; want an ECDSA (P-256, P-384, P-521) or RSA key", pub)
}

// verify checks a bundle's signatures file (its JWT, not the files it
// lists) with the key, as OPA's reader does.
func (k *bundleKey) verify(signatures []byte) error {
	var sc bundle.SignaturesConfig
	if err := json.Unmarshal(signatures, &sc); err != nil {
		return fmt.Errorf("the signatures file is not JSON: %w", err)
	}
	_, err := bundle.VerifyBundleSignature(sc, k.vc)
	return err
}

// declaresOverride reports whether the module's package annotation carries
// custom: {override: true}.
func declaresOverride(m *ast.Module) bool {
	for _, a := range m.Annotations {
		if a.Scope == "package" && a.Custom["override"] == true {
			return true
		}
	}
	return false
}

// merge combines the defaults with user modules. A user module whose
// package is a default package replaces every default module of that
// package, if allowed; a user module identical to the default it collides
// with is a copy, not an override, and is dropped.
func merge(defaults, user []module, allowOverride bool) ([]module, error) {
	byPkg := map[string][]module{}
	for _, d := range defaults {
		byPkg[d.pkg()] = append(byPkg[d.pkg()], d)
	}
	replaced := map[string]bool{}
	var kept []module
	var errs []error
	for _, u := range user {
		ds, isDefault := byPkg[u.pkg()]
		if !isDefault {
			kept = append(kept, u)
			continue
		}
		if slices.ContainsFunc(ds, func(d module) bool { return bytes.Equal(d.raw, u.raw) }) {
			continue
		}
		if !allowOverride && !declaresOverride(u.mod) {
			errs = append(errs, &OverrideError{File: u.path, Package: u.pkg()})
			continue
		}
		replaced[u.pkg()] = true
		kept = append(kept, u)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []module
	for _, d := range defaults {
		if !replaced[d.pkg()] {
			out = append(out, d)
		}
	}
	return append(out, kept...), nil
}

// digestModules is sha256 over the sorted (path, content) pairs.
func digestModules(ms []module) string {
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b module) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	for _, m := range sorted {
		fmt.Fprintf(h, "%s\x00%d\x00", m.path, len(m.raw))
		h.Write(m.raw)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ruleCodes are the reason codes the loaded rules can produce, found in
// their source: the constant "code" of each deny rule under
// data.wardgate.rules, and the codes packages declare in their METADATA
// (custom: {codes: [...]}).
type ruleCodes struct {
	known map[Code]bool
	// unchecked, when set, names a deny rule whose code is computed, in a
	// package that declares no codes: the codes cannot all be known.
	unchecked string
}

// collectCodes reads the codes of the modules' deny rules. A package's
// METADATA custom.codes that is not a list of strings is a *CompileError.
func collectCodes(ms []module) (ruleCodes, error) {
	rc := ruleCodes{known: map[Code]bool{}}
	declared := map[string]bool{}
	for _, m := range ms {
		codes, ok, err := declaredCodes(m)
		if err != nil {
			return ruleCodes{}, err
		}
		if ok {
			declared[m.pkg()] = true
		}
		for _, c := range codes {
			rc.known[c] = true
		}
	}
	for _, m := range ms {
		for _, r := range m.mod.Rules {
			if !isDenyRule(r) {
				continue
			}
			codes, constant := denyCodes(r)
			for _, c := range codes {
				rc.known[c] = true
			}
			if !constant && !declared[m.pkg()] && rc.unchecked == "" {
				rc.unchecked = fmt.Sprintf("%s:%d", m.path, r.Location.Row)
			}
		}
	}
	return rc, nil
}

// declaredCodes reads custom.codes from the module's package annotation;
// ok is false when there is none.
func declaredCodes(m module) (codes []Code, ok bool, err error) {
	for _, a := range m.mod.Annotations {
		v, has := a.Custom["codes"]
		if a.Scope != "package" || !has {
			continue
		}
		list, isList := v.([]any)
		for _, c := range list {
			s, isString := c.(string)
			if !isString || s == "" {
				isList = false
				break
			}
			codes = append(codes, Code(s))
		}
		if !isList {
			return nil, false, &CompileError{File: m.path, Line: a.Location.Row,
				Message: fmt.Sprintf("METADATA custom.codes: want a list of reason codes such as [change-freeze], got %v", v)}
		}
		ok = true
	}
	return codes, ok, nil
}

// rulesRoot is where decision.rego collects rule sets from.
var rulesRoot = ast.MustParseRef("data.wardgate.rules")

// isDenyRule reports whether r defines data.wardgate.rules.<name>.deny,
// the set decision.rego collects violations from.
func isDenyRule(r *ast.Rule) bool {
	if len(r.Head.Args) > 0 {
		return false
	}
	ref := r.Ref()
	if len(ref) != len(rulesRoot)+2 || !ref.HasPrefix(rulesRoot) {
		return false
	}
	_, named := ref[3].Value.(ast.String)
	return named && ref[4].Value.Compare(ast.String("deny")) == 0
}

// denyCodes returns the codes a deny rule reports. constant is false when
// a violation's code is computed: a partial set rule whose element is not
// an object with a constant string "code", or a complete rule (with its
// else branches) whose value is not a set of such objects.
func denyCodes(r *ast.Rule) (codes []Code, constant bool) {
	if r.Head.Key != nil {
		c, ok := violationCode(r.Head.Key)
		if !ok {
			return nil, false
		}
		return []Code{c}, true
	}
	constant = true
	for ; r != nil; r = r.Else {
		set, ok := r.Head.Value.Value.(ast.Set)
		if !ok {
			return codes, false
		}
		for _, t := range set.Slice() {
			c, ok := violationCode(t)
			if !ok {
				return codes, false
			}
			codes = append(codes, c)
		}
	}
	return codes, constant
}

// violationCode is the constant "code" of a violation object term.
func violationCode(t *ast.Term) (Code, bool) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return "", false
	}
	code := obj.Get(ast.StringTerm("code"))
	if code == nil {
		return "", false
	}
	s, ok := code.Value.(ast.String)
	return Code(s), ok
}

// checkRuleCodes fails when the trust configuration's rules: names a code
// no loaded rule produces (a typo would otherwise do nothing), with a
// *trust.ConfigError per code naming file, line and field.
// could-not-evaluate is never valid there. When a deny rule computes its
// code and its package declares none, unknown codes cannot be told from
// computed ones and are accepted; log says so.
func checkRuleCodes(c *trust.Config, ms []module, log *slog.Logger) error {
	if c == nil || len(c.Rules) == 0 {
		return nil
	}
	rc, err := collectCodes(ms)
	if err != nil {
		return err
	}
	delete(rc.known, CodeCouldNotEvaluate)
	known := make([]string, 0, len(rc.known))
	for k := range rc.known {
		known = append(known, string(k))
	}
	slices.Sort(known)
	var errs []*trust.ConfigError
	for code := range c.Rules {
		switch {
		case Code(code) == CodeCouldNotEvaluate:
			errs = append(errs, c.RuleError(code, "never produced by a rule: it is the deny when no decision could be made, always enforced"))
		case rc.known[Code(code)]:
		case rc.unchecked != "":
			log.Warn("rule codes in the trust configuration not checked: a deny rule computes its code and its package declares none (METADATA custom: {codes: [...]})",
				"code", code, "rule", rc.unchecked)
		default:
			errs = append(errs, c.RuleError(code, "no loaded policy produces this code (known: %s)", strings.Join(known, ", ")))
		}
	}
	slices.SortFunc(errs, func(a, b *trust.ConfigError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Field, b.Field))
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}
