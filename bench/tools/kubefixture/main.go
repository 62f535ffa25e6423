// Command kubefixture serves what bench/kube-load.sh needs on loopback: a
// go-containerregistry registry holding two images signed with the
// buildctl fixture key (as cosign signs), a trust configuration mapping
// them, and AdmissionReviews of a pod running both (pinned: by digest, as
// the mutating webhook leaves them; tag: by tag). It writes them into -dir,
// prints "ready HOST" and serves until its standard input closes or
// -lifetime passes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/wardgate/wardgate/internal/ocisign"
)

const trustYAML = `version: 1
sbom:
  required: false
vendors:
  buildctl:
    products:
      bms-api:
        device_classes: [building-management]
        min_version:
          "*": 1.0.0
        authorities:
          keys:
            - path: %s
kubernetes:
  images:
    - repository: %s/buildctl/bms-api
      vendor: buildctl
      product: bms-api
`

func main() {
	dir := flag.String("dir", "", "directory to write trust.yaml and the reviews into")
	fixtures := flag.String("fixtures", "fixtures/testdata", "the repository's fixture directory (keys)")
	lifetime := flag.Duration("lifetime", 15*time.Minute, "stop after this long at most")
	flag.Parse()
	if err := run(*dir, *fixtures, *lifetime); err != nil {
		fmt.Fprintln(os.Stderr, "kubefixture:", err)
		os.Exit(2)
	}
}

func run(dir, fx string, lifetime time.Duration) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	host := ln.Addr().String()
	signer, err := ocisign.LoadSigner(filepath.Join(fx, "keys", "buildctl.key"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lifetime)
	defer cancel()
	var pinned, tags []string
	for _, v := range []string{"1.2.0", "1.2.1"} {
		tag := host + "/buildctl/bms-api:" + v
		d, err := ocisign.PushSignedImage(ctx, tag, signer)
		if err != nil {
			return err
		}
		pinned = append(pinned, tag+"@"+d.DigestStr())
		tags = append(tags, tag)
	}
	pub, err := filepath.Abs(filepath.Join(fx, "keys", "buildctl.pub"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "trust.yaml"), fmt.Appendf(nil, trustYAML, pub, host), 0o644); err != nil {
		return err
	}
	// review-first.json has the older image alone, to be evaluated first:
	// evaluated together, 1.2.1 may be kept first and 1.2.0 then be
	// refused as a rollback.
	for name, imgs := range map[string][]string{"review-first.json": pinned[:1], "review-pinned.json": pinned, "review-tag.json": tags} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(review(imgs)), 0o644); err != nil {
			return err
		}
	}
	fmt.Println("ready", host)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// review is a pod CREATE as the API server sends it.
func review(images []string) string {
	var ctrs []string
	for i, img := range images {
		ctrs = append(ctrs, fmt.Sprintf(`{"name":"app-%d","image":%q,"resources":{"limits":{"cpu":"500m","memory":"256Mi"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}`, i, img))
	}
	pod := `{"kind":"Pod","apiVersion":"v1","metadata":{"generateName":"bms-api-7d9f8-","namespace":"facility","labels":{"app":"bms-api"}},` +
		`"spec":{"containers":[` + strings.Join(ctrs, ",") + `],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","schedulerName":"default-scheduler"},"status":{}}`
	return `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"5f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
		`"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},` +
		`"namespace":"facility","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","groups":["system:serviceaccounts","system:authenticated"]},` +
		`"object":` + pod + `,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`
}
