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
)

// Codes lists every finding code.
var Codes = []Code{CodeExfilVolume, CodeNewDestination, CodeFleetCorrelation, CodeBeaconing, CodeSegmentationViolation, CodeExpectedEgress}

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
}

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
	// Manifests are vendors' egress manifests (verified by the caller).
	Manifests []EgressManifest `json:"manifests"`
}

// ErrBadConfig: the configuration is invalid.
var ErrBadConfig = errors.New("egress: bad config")

// ReadConfig reads a JSON configuration and applies defaults.
func ReadConfig(r io.Reader) (Config, error) {
	var c Config
	dec := json.NewDecoder(io.LimitReader(r, 16<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
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
	if t.ExfilBytes < 0 || t.FleetMinDevices < 0 || t.DormancyDays < 0 || t.BeaconMinConnections < 0 || t.BeaconMaxJitter < 0 {
		errs = append(errs, fmt.Errorf("%w: negative threshold", ErrBadConfig))
	}
	if !c.Baseline.Start.IsZero() && !c.Baseline.End.IsZero() && !c.Baseline.Start.Before(c.Baseline.End) {
		errs = append(errs, fmt.Errorf("%w: baseline ends before it starts", ErrBadConfig))
	}
	return errors.Join(errs...)
}
