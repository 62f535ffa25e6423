package server

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/wardgate/wardgate/internal/proccpu"
	"github.com/wardgate/wardgate/kube"
)

// BenchmarkKubernetesValidate is one validating review of a pod whose two
// images were evaluated before, through the whole server over HTTP on
// loopback: decode, the gate's admission of each image (policy, fleet
// risk, the signed verdict appended to the log), the audit record, the
// answer. pinned: the images are digest references (as the mutating
// webhook leaves them): no registry is asked. tag: each review resolves
// the tags in the registry (HTTP on loopback). tag-ttl: by tag, with
// --kubernetes-tag-ttl: the registry is asked once per TTL.
func BenchmarkKubernetesValidate(b *testing.B) {
	for _, variant := range []string{"pinned", "tag", "tag-ttl"} {
		b.Run(variant, func(b *testing.B) {
			var opts []Option
			if variant == "tag-ttl" {
				opts = append(opts, WithKubernetes(KubernetesConfig{TagTTL: kube.MaxTagTTL}))
			}
			ke := newKubeEnvB(b, opts...)
			d1 := ke.push("bms-api:1.2.0", ke.good)
			d2 := ke.push("bms-api:1.2.1", ke.good)
			imgs := []string{ke.image("bms-api:1.2.0@" + d1), ke.image("bms-api:1.2.1@" + d2)}
			if variant != "pinned" {
				imgs = []string{ke.image("bms-api:1.2.0"), ke.image("bms-api:1.2.1")}
			}
			send := func(imgs ...string) {
				body := reviewJSON(podReview("facility", "bench", podSpec(nil, imgs, nil)))
				req, _ := http.NewRequest("POST", ke.ts.URL+"/v1/kubernetes/validate", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+string(ke.tokens[RoleKubernetes]))
				req.Header.Set("Content-Type", "application/json")
				res, err := ke.ts.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var rv admissionv1.AdmissionReview
				err = json.NewDecoder(res.Body).Decode(&rv)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 || !rv.Response.Allowed {
					b.Fatalf("%d %v %+v", res.StatusCode, err, rv.Response)
				}
			}
			// Each image evaluated once, in version order: evaluated
			// together, 1.2.1 may be kept first and 1.2.0 then be refused as
			// a rollback.
			send(imgs[0])
			send(imgs[1])
			b.ReportAllocs()
			cpu0 := proccpu.Time()
			for b.Loop() {
				send(imgs...)
			}
			// The process's CPU time (user+sys: the server, the client and
			// the registry) per review: unlike ns/op it hardly depends on
			// the machine's load.
			b.ReportMetric(float64((proccpu.Time()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			// The pages each review's commit wrote to wardgate.db's
			// write-ahead log (its current generation: the commits since
			// the last checkpoint that restarted it).
			commits, frames, err := walFrames(filepath.Join(ke.dir, "wardgate.db-wal"))
			if err != nil {
				b.Fatal(err)
			}
			if commits > 0 {
				b.ReportMetric(float64(frames)/float64(commits), "wal-pages/commit")
			}
		})
	}
}

// walFrames counts the commits and frames (pages) of a SQLite
// write-ahead log's current generation: the frames after its header whose
// salts are the header's, each commit ending at a frame that gives the
// database's size.
func walFrames(path string) (commits, frames int, err error) {
	wal, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	if len(wal) < 32 {
		return 0, 0, fmt.Errorf("%s: %d bytes, shorter than a WAL header", path, len(wal))
	}
	page := int(binary.BigEndian.Uint32(wal[8:12]))
	salt := wal[16:24]
	pending := 0
	for off := 32; off+24+page <= len(wal); off += 24 + page {
		h := wal[off : off+24]
		if string(h[8:16]) != string(salt) {
			break // a frame of an earlier generation
		}
		pending++
		if binary.BigEndian.Uint32(h[4:8]) != 0 { // a commit's last frame
			commits++
			frames += pending
			pending = 0
		}
	}
	return commits, frames, nil
}

// newKubeEnvB is newKubeEnv for a benchmark (the rate limit out of the
// way).
func newKubeEnvB(b *testing.B, opts ...Option) *kubeEnv {
	return newKubeEnv(b, false, append(opts, WithRateLimits(map[Role]RateLimit{RoleKubernetes: {Rate: 1e9, Burst: 1e9}}))...)
}
