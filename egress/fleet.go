package egress

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Device is one inventory entry.
type Device struct {
	// Name is the device's name as the sensors report it (matched
	// case-insensitively).
	Name string `json:"name"`
	// Addresses are the device's IP addresses; Zeek and OCSF records are
	// mapped to the device through them.
	Addresses []netip.Addr `json:"addresses"`
	// Class is the device class, e.g. "infusion-pump".
	Class string `json:"class"`
	// Segment is the network segment the device sits in.
	Segment string `json:"segment"`
	// Ring is the device's rollout ring label; "canary" puts it in the
	// first ring of every rollout to its class (docs/rollout.md).
	Ring string `json:"ring,omitempty"`
}

// Inventory is the fleet's devices, indexed by name and address.
type Inventory struct {
	Devices []Device
	byName  map[string]int
	byAddr  map[netip.Addr]int
}

// ErrBadInventory: the inventory could not be read.
var ErrBadInventory = errors.New("egress: bad inventory")

// NewInventory indexes devices. Names and addresses must be unique.
func NewInventory(devices []Device) (*Inventory, error) {
	inv := &Inventory{Devices: devices, byName: map[string]int{}, byAddr: map[netip.Addr]int{}}
	var errs []error
	for i, d := range devices {
		if d.Name == "" || d.Class == "" {
			errs = append(errs, fmt.Errorf("%w: device %d: name and class are required", ErrBadInventory, i+1))
			continue
		}
		k := strings.ToLower(d.Name)
		if _, dup := inv.byName[k]; dup {
			errs = append(errs, fmt.Errorf("%w: device %s listed twice", ErrBadInventory, d.Name))
		}
		inv.byName[k] = i
		for _, a := range d.Addresses {
			if j, dup := inv.byAddr[a]; dup && j != i {
				errs = append(errs, fmt.Errorf("%w: address %s on %s and %s", ErrBadInventory, a, devices[j].Name, d.Name))
			}
			inv.byAddr[a] = i
		}
	}
	return inv, errors.Join(errs...)
}

// ReadInventory reads an inventory as JSON (an array of Device, or
// {"devices": [...]}) or CSV with the header name,addresses,class,segment
// (addresses separated by spaces or semicolons).
func ReadInventory(r io.Reader) (*Inventory, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\ufeff")))
	var devs []Device
	switch {
	case len(b) > 0 && b[0] == '[':
		err = json.Unmarshal(b, &devs)
	case len(b) > 0 && b[0] == '{':
		var w struct {
			Devices []Device `json:"devices"`
		}
		err = json.Unmarshal(b, &w)
		devs = w.Devices
	default:
		devs, err = readInventoryCSV(b)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInventory, err)
	}
	return NewInventory(devs)
}

// ReadInventoryFile reads the inventory in the file at path (see
// ReadInventory); an error reading it names the file.
func ReadInventoryFile(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inv, err := ReadInventory(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

func readInventoryCSV(b []byte) ([]Device, error) {
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("empty CSV")
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"name", "addresses", "class", "segment"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("CSV header lacks %q", need)
		}
	}
	var devs []Device
	for n, rec := range recs[1:] {
		d := Device{Name: rec[col["name"]], Class: rec[col["class"]], Segment: rec[col["segment"]]}
		if i, ok := col["ring"]; ok && i < len(rec) {
			d.Ring = rec[i]
		}
		for _, a := range strings.FieldsFunc(rec[col["addresses"]], func(r rune) bool { return r == ';' || r == ' ' }) {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+2, err)
			}
			d.Addresses = append(d.Addresses, ip)
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// Resolve finds the device an event belongs to: by DeviceName, else by
// LocalIP.
func (inv *Inventory) Resolve(ev *Event) (*Device, bool) {
	if ev.DeviceName != "" {
		if i, ok := inv.byName[strings.ToLower(ev.DeviceName)]; ok {
			return &inv.Devices[i], true
		}
	}
	if i, ok := inv.byAddr[ev.LocalIP.Unmap()]; ok {
		return &inv.Devices[i], true
	}
	return nil, false
}

// Device returns the device named name.
func (inv *Inventory) Device(name string) (*Device, bool) {
	i, ok := inv.byName[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return &inv.Devices[i], true
}

// Installation records that a device installed an update.
type Installation struct {
	// Device is the inventory name of the device.
	Device string `json:"device"`
	// Digest is the artifact digest, "sha256:<hex>".
	Digest string `json:"digest"`
	// Product and Version identify the release.
	Product string `json:"product"`
	Version string `json:"version"`
	// Time is when the device installed it.
	Time time.Time `json:"time"`
}

// Validate checks the required fields.
func (in Installation) Validate() error {
	var errs []error
	if in.Device == "" {
		errs = append(errs, errors.New("device is required"))
	}
	if !strings.HasPrefix(in.Digest, "sha256:") || len(in.Digest) != len("sha256:")+64 {
		errs = append(errs, fmt.Errorf("digest %q: want sha256:<64 hex>", in.Digest))
	}
	if in.Time.IsZero() {
		errs = append(errs, errors.New("time is required"))
	}
	return errors.Join(errs...)
}

// ReadInstallations reads installation records as a JSON array, JSON
// Lines, or CSV with the header device,digest,product,version,time.
func ReadInstallations(r io.Reader) ([]Installation, error) {
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\ufeff")))
	var out []Installation
	switch {
	case len(b) == 0:
	case b[0] == '[':
		err = json.Unmarshal(b, &out)
	case b[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(b))
		for dec.More() {
			var in Installation
			if err = dec.Decode(&in); err != nil {
				break
			}
			out = append(out, in)
		}
	default:
		var recs [][]string
		if recs, err = csv.NewReader(bytes.NewReader(b)).ReadAll(); err == nil {
			col := map[string]int{}
			for i, h := range recs[0] {
				col[strings.ToLower(strings.TrimSpace(h))] = i
			}
			for _, need := range []string{"device", "digest", "product", "version", "time"} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("installations: CSV header lacks %q", need)
				}
			}
			for _, rec := range recs[1:] {
				t, perr := ParseTime(rec[col["time"]])
				if perr != nil {
					return nil, fmt.Errorf("installations: %w", perr)
				}
				out = append(out, Installation{Device: rec[col["device"]], Digest: rec[col["digest"]], Product: rec[col["product"]], Version: rec[col["version"]], Time: t})
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("installations: %w", err)
	}
	var errs []error
	for i, in := range out {
		if err := in.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("installation %d: %w", i+1, err))
		}
	}
	return out, errors.Join(errs...)
}

// Destination names where a connection went, as detections compare it:
// the registered domain (eTLD+1 from the public suffix list) of the host
// in url, so that per-victim subdomains group together, else the IP.
func Destination(url string, ip netip.Addr) string {
	if h := hostOf(url); h != "" {
		if a, err := netip.ParseAddr(h); err == nil {
			return a.Unmap().String()
		}
		if d, err := publicsuffix.EffectiveTLDPlusOne(h); err == nil {
			return d
		}
		return h
	}
	if ip.IsValid() {
		return ip.Unmap().String()
	}
	return ""
}

// hostOf extracts the lower-case host of a RemoteUrl, which Defender fills
// with a host name or a full URL.
func hostOf(url string) string {
	u := strings.TrimSpace(url)
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexAny(u, "/?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		u = u[i+1:]
	}
	if strings.HasPrefix(u, "[") {
		if i := strings.IndexByte(u, ']'); i > 0 {
			return u[1:i]
		}
	}
	if i := strings.LastIndexByte(u, ':'); i >= 0 && strings.Count(u, ":") == 1 {
		u = u[:i]
	}
	return strings.TrimSuffix(strings.ToLower(u), ".")
}

// Matcher matches connections against a list of destinations: domain
// names (the name and its subdomains), IP addresses and CIDR prefixes.
type Matcher struct {
	domains  []string
	prefixes []netip.Prefix
}

// NewMatcher parses a destination list.
func NewMatcher(list []string) (Matcher, error) {
	var m Matcher
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			m.prefixes = append(m.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			m.prefixes = append(m.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		h := hostOf(s)
		if h == "" || strings.ContainsAny(h, " /") {
			return m, fmt.Errorf("destination %q: not a domain, IP or CIDR", s)
		}
		m.domains = append(m.domains, strings.TrimPrefix(h, "*."))
	}
	return m, nil
}

// Match reports whether a connection to url / ip is in the list.
func (m Matcher) Match(url string, ip netip.Addr) bool {
	if h := hostOf(url); h != "" {
		for _, d := range m.domains {
			if h == d || strings.HasSuffix(h, "."+d) {
				return true
			}
		}
		if a, err := netip.ParseAddr(h); err == nil {
			ip = a
		}
	}
	ip = ip.Unmap()
	for _, p := range m.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// EgressManifestPredicateType is the in-toto predicate type of a vendor's
// egress manifest.
const EgressManifestPredicateType = "https://wardgate.dev/egress-manifest/v1"

// EgressManifest lists the destinations a release may contact.
type EgressManifest struct {
	// Digest is the release the manifest is bound to, "sha256:<hex>".
	Digest string `json:"digest"`
	// Destinations are domains, IPs or CIDR prefixes.
	Destinations []string `json:"destinations"`
}

// ErrNotEgressManifest: the statement is not an egress manifest.
var ErrNotEgressManifest = errors.New("egress: not an egress manifest")

// ReadEgressManifest reads the egress manifest from an in-toto Statement,
// bare or inside a DSSE envelope. It does not verify the envelope's
// signature: run `wardgate verify attestation` first. Each sha256 subject
// yields one manifest.
func ReadEgressManifest(r io.Reader) ([]EgressManifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if json.Unmarshal(b, &env) == nil && env.Payload != "" {
		if b, err = base64.StdEncoding.DecodeString(env.Payload); err != nil {
			return nil, fmt.Errorf("%w: DSSE payload: %w", ErrNotEgressManifest, err)
		}
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		Predicate struct {
			Destinations []string `json:"destinations"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotEgressManifest, err)
	}
	if st.PredicateType != EgressManifestPredicateType {
		return nil, fmt.Errorf("%w: predicate type %q", ErrNotEgressManifest, st.PredicateType)
	}
	if _, err := NewMatcher(st.Predicate.Destinations); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotEgressManifest, err)
	}
	var out []EgressManifest
	for _, s := range st.Subject {
		if h := s.Digest["sha256"]; h != "" {
			out = append(out, EgressManifest{Digest: "sha256:" + h, Destinations: slices.Clone(st.Predicate.Destinations)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no sha256 subject", ErrNotEgressManifest)
	}
	return out, nil
}
