package server

import (
	"errors"
	"net/http"

	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/rollout"
)

// --- POST /v1/updates/{digest}/rollout ---------------------------------------

// RolloutRequest is an admin's action on an update's rollout in one device
// class: pause, resume, abort or force-widen, with the reason (required;
// kept in the signed log entry with the admin's token name).
type RolloutRequest struct {
	Class  string `json:"class"`
	Action string `json:"action"`
	Reason string `json:"reason"`
}

var rolloutActions = map[string]rollout.Action{
	"pause": rollout.Paused, "resume": rollout.Resumed, "abort": rollout.Stopped, "force-widen": rollout.ForceWidened,
}

// maxReason bounds an admin's reason.
const maxReason = 1024

func (s *Server) postRollout(w http.ResponseWriter, r *http.Request) error {
	st := state(r)
	d := r.PathValue("digest")
	if !validDigest(d) {
		return badRequest("digest %q: want sha256:<64 lowercase hex>", d)
	}
	var req RolloutRequest
	if err := s.decodeJSON(r, &req); err != nil {
		return err
	}
	act, ok := rolloutActions[req.Action]
	switch {
	case !ok:
		return badRequest("action %q: want pause, resume, abort or force-widen", req.Action)
	case req.Class == "" || len(req.Class) > maxField:
		return badRequest("class is required (at most %d bytes)", maxField)
	case req.Reason == "" || len(req.Reason) > maxReason:
		return badRequest("reason is required (at most %d bytes): it goes into the signed log", maxReason)
	}
	rec, known, err := s.deps.Records.Lookup(r.Context(), d) // kept by another replica, too
	if err != nil {
		return err
	}
	if !known {
		return errorf(http.StatusNotFound, "not-found", "update %s was never evaluated", d)
	}
	ch, err := s.gate.Load().RolloutAction(r.Context(), rec.Evidence.Artifact, req.Class, act, st.principal.Name, req.Reason)
	switch {
	case errors.Is(err, gate.ErrNoRollout):
		return errorf(http.StatusConflict, "no-rollout", "%v", err)
	case errors.Is(err, rollout.ErrTransition):
		return errorf(http.StatusConflict, "rollout-transition", "%v", err)
	case errors.Is(err, rollout.ErrNoReason):
		return badRequest("%v", err)
	case errors.Is(err, gate.ErrNoInventory):
		return errorf(http.StatusConflict, "no-inventory", "%v", err)
	case err != nil:
		return err
	}
	if aerr := s.audit(r, st, d+" "+req.Class+" "+req.Action, http.StatusOK, string(ch.Status)); aerr != nil {
		return aerr
	}
	s.metrics.rolloutActions.add(1, req.Action)
	writeJSON(w, http.StatusOK, ch)
	return nil
}
