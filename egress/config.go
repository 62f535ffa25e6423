package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"time"
)

// Code is a finding's stable code. Codes never change meaning.
type Code string

// Finding codes.
const (
	CodeExfilVolume           Code = "exfil-volume"
	CodeNewDestination        Code = "new-destination"
	CodeFleetCorrelation      Code = "fleet-correlation"
	CodeBeaconing             Code = "beaconing"
	CodeSegmentationViolation Code = "segmentation-violation"
	CodeExpectedEgress        Code = "expected-egress"
	CodeVolumeAnomaly         Code = "volume-anomaly"
	CodeFleetChange           Code = "fleet-change"
)

// Codes lists every finding code.
var Codes = []Code{CodeExfilVolume, CodeNewDestination, CodeFleetCorrelation, CodeBeaconing, CodeSegmentationViolation, CodeExpectedEgress,
	CodeVolumeAnomaly, CodeFleetChange}

// Window is a half-open time interval [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Contains reports whether t is in the window; a zero bound is open.
func (w Window) Contains(t time.Time) bool {
	return (w.Start.IsZero() || !t.Before(w.Start)) && (w.End.IsZero() || t.Before(w.End))
}

// ClassPolicy is what a device class may do on the network.
type ClassPolicy struct {
	// AllowedDestinations are vendor clouds, NTP, DNS, PACS...: domains,
	// IPs or CIDRs. Traffic to them is never new, never exfiltration.
	AllowedDestinations []string `json:"allowedDestinations"`
	// AllowedSegments are the segments the class may reach besides its
	// own. Empty means only its own.
	AllowedSegments []string `json:"allowedSegments"`
}

// Thresholds tune the detections.
type Thresholds struct {
	// ExfilBytes: sent bytes per device, URL and hour above which
	// exfil-volume fires. Default 5,000,000.
	ExfilBytes int64 `json:"exfilBytes"`
	// FleetMinDevices is K, the installers that must reach a new
	// destination for fleet-correlation. Default 2.
	FleetMinDevices int `json:"fleetMinDevices"`
	// DormancyDays: how long after installing an update a first contact
	// still correlates with it. Default 30.
	DormancyDays int `json:"dormancyDays"`
	// BeaconMinConnections: connections needed to judge regularity.
	// Default 8.
	BeaconMinConnections int `json:"beaconMinConnections"`
	// BeaconMaxJitter: the largest median absolute deviation of the
	// inter-arrival times, relative to their median, still called
	// regular. Default 0.2.
	BeaconMaxJitter float64 `json:"beaconMaxJitter"`
	// ContrastAlpha is the significance level of the exact test that
	// attributes a behaviour to an update when comparable devices without
	// it show the behaviour too. Default 0.01.
	ContrastAlpha float64 `json:"contrastAlpha"`
	// ContrastMinControls: comparable devices of the class without the
	// update that must be observed over the same period before anything
	// is attributed to it. Default 1.
	ContrastMinControls int `json:"contrastMinControls"`
	// ObservedHours: a device is observed at a time when it sent any
	// telemetry within this many hours of it. Default 24.
	ObservedHours int `json:"observedHours"`
	// VolumeScore: the robust score (log-scale median and MAD) above which
	// an hour's volume to a baseline destination is far outside the
	// baseline. Default 6.
	VolumeScore float64 `json:"volumeScore"`
	// VolumeMinHours: device-hours with traffic to a destination in the
	// baseline window needed to learn its volume; below it the flat
	// ExfilBytes rule applies. Default 24.
	VolumeMinHours int `json:"volumeMinHours"`
}

// Defaults of the thresholds; docs/egress.md says why.
const (
	DefaultContrastAlpha       = 0.01
	DefaultContrastMinControls = 1
	DefaultObservedHours       = 24
	DefaultVolumeScore         = 6.0
	DefaultVolumeMinHours      = 24
)

// Config is the fleet policy for detections.
type Config struct {
	// Baseline is the window whose traffic is the normal per class. With a
	// zero End, the baseline ends at the first installation.
	Baseline Window `json:"baseline"`
	// Segments name network segments by CIDR prefixes.
	Segments map[string][]netip.Prefix `json:"segments"`
	// Classes are per device class policies.
	Classes map[string]ClassPolicy `json:"classes"`
	// Thresholds tune the detections; zero values take the defaults.
	Thresholds Thresholds `json:"thresholds"`
	// QuarantineCodes are the codes whose findings quarantine an update;
	// any other finding makes it suspicious. Default fleet-correlation
	// and expected-egress.
	QuarantineCodes []Code `json:"quarantineCodes"`
	// Manifests are vendors' egress manifests, verified by the caller (a
	// configuration file cannot carry them: see ReadConfig).
	Manifests []EgressManifest `json:"-"`
}

// ErrBadConfig: the configuration is invalid.
var ErrBadConfig = errors.New("egress: bad config")

// ReadConfig reads a JSON configuration and applies defaults.
//
// A manifest silences findings, so only a vendor's signed one counts: a
// "manifests" member (an unsigned list) is refused, not ignored.
func ReadConfig(r io.Reader) (Config, error) {
	var f struct {
		Config
		Manifests json.RawMessage `json:"manifests"`
	}
	dec := json.NewDecoder(io.LimitReader(r, 16<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f.Config, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if f.Manifests != nil {
		return f.Config, fmt.Errorf("%w: manifests: an egress manifest silences findings, so only one the vendor signed is used, never a list in the detection configuration: give the signed envelope (egress_manifests of the product in trust.yaml, or egress findings --manifest)", ErrBadConfig)
	}
	c := f.Config
	return c.WithDefaults(), c.Validate()
}

// ReadConfigFile reads the configuration in the file at path (see
// ReadConfig); an error reading it names the file.
func ReadConfigFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}.WithDefaults(), err
	}
	defer f.Close()
	c, err := ReadConfig(f)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WithDefaults fills zero thresholds and quarantine codes.
func (c Config) WithDefaults() Config {
	t := &c.Thresholds
	if t.ExfilBytes == 0 {
		t.ExfilBytes = DefaultExfilBytes
	}
	if t.FleetMinDevices == 0 {
		t.FleetMinDevices = 2
	}
	if t.DormancyDays == 0 {
		t.DormancyDays = 30
	}
	if t.BeaconMinConnections == 0 {
		t.BeaconMinConnections = 8
	}
	if t.BeaconMaxJitter == 0 {
		t.BeaconMaxJitter = 0.2
	}
	if t.ContrastAlpha == 0 {
		t.ContrastAlpha = DefaultContrastAlpha
	}
	if t.ContrastMinControls == 0 {
		t.ContrastMinControls = DefaultContrastMinControls
	}
	if t.ObservedHours == 0 {
		t.ObservedHours = DefaultObservedHours
	}
	if t.VolumeScore == 0 {
		t.VolumeScore = DefaultVolumeScore
	}
	if t.VolumeMinHours == 0 {
		t.VolumeMinHours = DefaultVolumeMinHours
	}
	if c.QuarantineCodes == nil {
		c.QuarantineCodes = []Code{CodeFleetCorrelation, CodeExpectedEgress}
	}
	return c
}

// Validate checks destinations, codes and thresholds.
func (c Config) Validate() error {
	var errs []error
	for name, p := range c.Classes {
		if _, err := NewMatcher(p.AllowedDestinations); err != nil {
			errs = append(errs, fmt.Errorf("%w: class %s: %w", ErrBadConfig, name, err))
		}
		for _, s := range p.AllowedSegments {
			if _, ok := c.Segments[s]; !ok {
				errs = append(errs, fmt.Errorf("%w: class %s: unknown segment %q", ErrBadConfig, name, s))
			}
		}
	}
	for _, code := range c.QuarantineCodes {
		if !slices.Contains(Codes, code) {
			errs = append(errs, fmt.Errorf("%w: quarantine code %q unknown", ErrBadConfig, code))
		}
	}
	for _, m := range c.Manifests {
		if _, err := NewMatcher(m.Destinations); err != nil {
			errs = append(errs, fmt.Errorf("%w: manifest %s: %w", ErrBadConfig, m.Digest, err))
		}
	}
	t := c.Thresholds
	if t.ExfilBytes < 0 || t.FleetMinDevices < 0 || t.DormancyDays < 0 || t.BeaconMinConnections < 0 || t.BeaconMaxJitter < 0 ||
		t.ContrastMinControls < 0 || t.ObservedHours < 0 || t.VolumeScore < 0 || t.VolumeMinHours < 0 {
		errs = append(errs, fmt.Errorf("%w: negative threshold", ErrBadConfig))
	}
	if t.ContrastAlpha < 0 || t.ContrastAlpha >= 1 {
		errs = append(errs, fmt.Errorf("%w: contrastAlpha %v: want a significance level in (0, 1)", ErrBadConfig, t.ContrastAlpha))
	}
	if !c.Baseline.Start.IsZero() && !c.Baseline.End.IsZero() && !c.Baseline.Start.Before(c.Baseline.End) {
		errs = append(errs, fmt.Errorf("%w: baseline ends before it starts", ErrBadConfig))
	}
	return errors.Join(errs...)
}
