package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wardgate/wardgate/trust"
)

// ref is an image reference parsed once: its repository, and the tag or
// digest it names (a digest wins over a tag, as the container runtime
// decides: name:tag@sha256:... runs the digest).
type ref struct {
	repo   name.Repository
	tag    string // "" when none was given
	digest string // sha256:<hex>, "" when none was given
}

// parseRef parses an image reference as Kubernetes writes it (nginx,
// nginx:1.25, registry:5000/a/b:1@sha256:...). Without tag or digest the
// tag is latest, as the container runtime assumes.
func parseRef(s string) (ref, error) {
	if s == "" {
		return ref{}, errors.New("empty image reference")
	}
	if len(s) > 1024 {
		return ref{}, errors.New("image reference longer than 1024 bytes")
	}
	nameTag, digest, pinned := strings.Cut(s, "@")
	r, err := name.ParseReference(nameTag, name.WeakValidation)
	if err != nil {
		return ref{}, err
	}
	out := ref{repo: r.Context()}
	if pinned {
		d, err := name.NewDigest(nameTag[:tagEnd(nameTag)]+"@"+digest, name.WeakValidation)
		if err != nil {
			return ref{}, err
		}
		out.digest = d.DigestStr()
	}
	if t, ok := r.(name.Tag); ok && (hasTag(nameTag) || !pinned) {
		out.tag = t.TagStr()
	}
	return out, nil
}

func lastIndex(s string, c byte) int { return strings.LastIndexByte(s, c) }

// tagEnd is the end of the repository part of name[:tag].
func tagEnd(s string) int {
	slash := lastIndex(s, '/')
	if i := lastIndex(s, ':'); i > slash {
		return i
	}
	return len(s)
}

// hasTag reports whether name[:tag] names a tag explicitly.
func hasTag(s string) bool { return tagEnd(s) != len(s) }

// repository is host/path, the string kubernetes.images patterns match.
func (r ref) repository() string { return r.repo.RegistryStr() + "/" + r.repo.RepositoryStr() }

// pinned is the reference with the digest: name:tag@sha256:... when it had
// a tag, name@sha256:... otherwise.
func (r ref) pinned(digest string) string {
	s := r.repository()
	if r.tag != "" {
		s += ":" + r.tag
	}
	return s + "@" + digest
}

// resolved is one image after resolution and mapping, or the reason it
// was refused before the gate saw it.
type resolved struct {
	img    Image
	ref    ref
	refuse *Reason
}

// resolve parses, checks the registry, maps and resolves one image. A
// refusal is a result (refuse set), not an error; the error is only the
// context's.
func (r *Reviewer) resolve(ctx context.Context, k *trust.Kubernetes, image string) resolved {
	out := resolved{img: Image{Ref: image}}
	refuse := func(code, format string, args ...any) resolved {
		out.refuse = &Reason{Code: code, Message: fmt.Sprintf(format, args...)}
		return out
	}
	rf, err := parseRef(image)
	if err != nil {
		return refuse(CodeInvalidImage, "image %q is not a valid reference: %v", image, err)
	}
	out.ref = rf
	if host := rf.repo.RegistryStr(); !r.cfg.registryAllowed(host) {
		return refuse(CodeRegistryNotAllowed, "registry %s is not one the gate may fetch from", host)
	}
	m, ok := k.Image(rf.repository())
	if !ok {
		return refuse(CodeImageUnmapped, "repository %s maps to no product in the trust configuration (kubernetes.images)", rf.repository())
	}
	out.img.Vendor, out.img.Product, out.img.DeviceClass = m.Vendor, m.Product, m.DeviceClass
	digest := rf.digest
	if digest == "" {
		tag := rf.repo.Tag(rf.tag).String()
		if d, ok := r.tags.get(tag, r.cfg.now()); ok {
			digest = d
		} else {
			at := r.cfg.now()
			d, err := r.cfg.resolver.Resolve(ctx, tag)
			switch {
			case ctx.Err() != nil:
				return refuse(CodeDeadlineExceeded, "resolving tag %s: no answer from registry %s within the deadline", rf.tag, rf.repo.RegistryStr())
			case err != nil:
				return refuse(CodeImageUnresolved, "resolving tag %s: %v", rf.tag, err)
			}
			digest = d
			r.tags.put(tag, d, at) // dated when the registry was asked
		}
	}
	out.img.Digest = rf.repository() + "@" + digest
	out.img.Version = rf.tag
	if out.img.Version == "" {
		out.img.Version = digest
	}
	return out
}

// RegistryResolver resolves tags with an HTTP HEAD of the manifest
// (falling back to GET where the registry wants it), anonymously.
type RegistryResolver struct {
	transport http.RoundTripper
}

// NewRegistryResolver resolves over base (http.DefaultTransport when nil),
// with a timeout on each phase of the request; the review's context bounds
// the whole.
func NewRegistryResolver(base http.RoundTripper) *RegistryResolver {
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*http.Transport); ok {
		t = t.Clone()
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = 5 * time.Second
		t.ResponseHeaderTimeout = 10 * time.Second
		t.MaxIdleConnsPerHost = 16
		base = t
	}
	return &RegistryResolver{transport: base}
}

// Resolve implements Resolver.
func (rr *RegistryResolver) Resolve(ctx context.Context, tag string) (string, error) {
	t, err := name.NewTag(tag, name.WeakValidation)
	if err != nil {
		return "", err
	}
	d, err := remote.Head(t, remote.WithContext(ctx), remote.WithTransport(rr.transport), remote.WithUserAgent("wardgate"))
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return "", fmt.Errorf("registry %s has no tag %s in %s", t.RegistryStr(), t.TagStr(), t.RepositoryStr())
		}
		return "", err
	}
	return d.Digest.String(), nil
}
