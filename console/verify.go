package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/wardgate/wardgate/attest"
)

// The log page shows nothing it has not checked: the checkpoint's
// signature with the log's public key, each entry's leaf hash against its
// envelope, each inclusion proof against the checkpoint's root, and each
// envelope's signature; a failed check is shown as failed, with why.

type logView struct {
	Checkpoint    Checkpoint
	CheckpointOK  bool
	CheckpointErr string
	Entries       []entryView
	Total         int
	Query         LogQuery
	Links         links
	Pager         pager
}

type entryView struct {
	Entry
	Verdict  verdict
	ProofOK  bool
	ProofErr string
}

// verdict is what a logged envelope says.
type verdict struct {
	Signed      bool // the envelope's signature verified with the log's key
	Result      string
	Codes       []string
	DeviceClass string
	Err         string
}

func checkLog(lp LogPage) logView {
	v := logView{Checkpoint: lp.Checkpoint, Total: lp.Total}
	cp := lp.Checkpoint
	ver, err := attest.NewVerifier(cp.PublicKey)
	if err == nil {
		var parsed attest.Checkpoint
		parsed, err = attest.ParseCheckpoint(cp.Note, cp.Origin, ver)
		if err == nil && (parsed.Size != cp.Size || !bytes.Equal(parsed.Root, cp.Root)) {
			err = fmt.Errorf("the signed note says size %d, root %x; the log says size %d, root %x", parsed.Size, parsed.Root, cp.Size, cp.Root)
		}
	}
	if err != nil {
		v.CheckpointErr = err.Error()
		ver = nil
	} else {
		v.CheckpointOK = true
	}
	for _, e := range lp.Entries {
		ev := entryView{Entry: e, Verdict: readVerdict(e.Envelope, ver)}
		ev.ProofOK, ev.ProofErr = checkInclusion(e, cp, v.CheckpointOK)
		v.Entries = append(v.Entries, ev)
	}
	return v
}

func checkInclusion(e Entry, cp Checkpoint, cpOK bool) (bool, string) {
	h := rfc6962.DefaultHasher
	leaf := h.HashLeaf(e.Envelope)
	switch {
	case !bytes.Equal(leaf, e.LeafHash):
		return false, "the envelope does not hash to the logged leaf"
	case !cpOK:
		return false, "the checkpoint did not verify"
	case e.TreeSize != cp.Size:
		return false, fmt.Sprintf("proof for tree size %d, checkpoint size %d", e.TreeSize, cp.Size)
	}
	if err := proof.VerifyInclusion(h, e.Index, cp.Size, leaf, e.Proof, cp.Root); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// readVerdict reads the statement in a logged envelope; with a verifier,
// the envelope's signature is checked first.
func readVerdict(env []byte, v *attest.Verifier) verdict {
	var st *attest.Statement
	var err error
	signed := false
	if v != nil {
		st, err = v.VerifyStatement(env)
		signed = err == nil
	} else {
		var e attest.Envelope
		if err = json.Unmarshal(env, &e); err == nil {
			var payload []byte
			if payload, err = base64.StdEncoding.DecodeString(e.Payload); err == nil {
				st, err = attest.ParseStatement(payload)
			}
		}
	}
	if err != nil {
		return verdict{Err: err.Error()}
	}
	out := verdict{Signed: signed, Result: st.Predicate.VerificationResult}
	if x := st.Predicate.Wardgate; x != nil {
		out.Codes, out.DeviceClass = x.ReasonCodes, x.DeviceClass
	}
	return out
}
