package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
)

// OCSFNetworkActivity is OCSF's class_uid for Network Activity.
const OCSFNetworkActivity = 4001

type ocsfEndpoint struct {
	IP       string      `json:"ip"`
	Port     json.Number `json:"port"`
	Hostname string      `json:"hostname"`
	Domain   string      `json:"domain"`
	Name     string      `json:"name"`
	UID      string      `json:"uid"`
}

// ocsfEvent is the subset of an OCSF 1.x Network Activity event wardgate
// reads. Numbers are json.Number so that any spelling of a number reads
// (see number.go).
type ocsfEvent struct {
	ClassUID   json.Number  `json:"class_uid"`
	ActivityID json.Number  `json:"activity_id"`
	StatusID   json.Number  `json:"status_id"`
	Time       json.Number  `json:"time"`
	Src        ocsfEndpoint `json:"src_endpoint"`
	Dst        ocsfEndpoint `json:"dst_endpoint"`
	Device     *struct {
		Hostname string `json:"hostname"`
		Name     string `json:"name"`
		UID      string `json:"uid"`
		IP       string `json:"ip"`
	} `json:"device"`
	Traffic struct {
		BytesOut json.Number `json:"bytes_out"`
		BytesIn  json.Number `json:"bytes_in"`
	} `json:"traffic"`
	ConnectionInfo struct {
		ProtocolName string `json:"protocol_name"`
	} `json:"connection_info"`
	Actor struct {
		Process struct {
			File struct {
				Name string `json:"name"`
			} `json:"file"`
		} `json:"process"`
	} `json:"actor"`
}

// errOtherClass marks a well-formed OCSF event of another class.
var errOtherClass = errors.New("not OCSF network activity")

// ocsfToEvent converts one OCSF line. The device is the event's device
// (host name, then name), else the source endpoint; the remote end is the
// destination endpoint. Activities Open (1) and Traffic (6) are successes
// unless status_id is Failure (2); Fail (4) and Refuse (5) are failures.
func ocsfToEvent(line []byte, ev *Event) error {
	var o ocsfEvent
	if err := json.Unmarshal(line, &o); err != nil {
		return err
	}
	if class, err := numberInt(o.ClassUID, "class_uid", 0, math.MaxInt64); err != nil {
		return err
	} else if class != OCSFNetworkActivity {
		return errOtherClass
	}
	var n [6]int64
	for i, f := range []struct {
		v    json.Number
		name string
		max  int64
	}{{o.ActivityID, "activity_id", math.MaxInt64}, {o.StatusID, "status_id", math.MaxInt64},
		{o.Src.Port, "src_endpoint.port", 65535}, {o.Dst.Port, "dst_endpoint.port", 65535},
		{o.Traffic.BytesOut, "traffic.bytes_out", math.MaxInt64}, {o.Traffic.BytesIn, "traffic.bytes_in", math.MaxInt64}} {
		v, err := numberInt(f.v, f.name, 0, f.max)
		if err != nil {
			return err
		}
		n[i] = v
	}
	activity, status := n[0], n[1]
	t, err := ocsfTime(o.Time)
	if err != nil {
		return err
	}
	*ev = Event{
		Time:       t,
		RemotePort: uint16(n[3]), LocalPort: uint16(n[2]),
		RemoteURL: firstNonEmpty(o.Dst.Hostname, o.Dst.Domain),
		Protocol:  o.ConnectionInfo.ProtocolName,
		Process:   o.Actor.Process.File.Name,
		SentBytes: n[4], ReceivedBytes: n[5],
	}
	local := o.Src.IP
	if d := o.Device; d != nil {
		ev.DeviceName = firstNonEmpty(d.Hostname, d.Name)
		ev.DeviceID = d.UID
		local = firstNonEmpty(local, d.IP)
	}
	if ev.DeviceName == "" {
		ev.DeviceName = firstNonEmpty(o.Src.Hostname, o.Src.Name)
	}
	if local != "" {
		if ev.LocalIP, err = netip.ParseAddr(local); err != nil {
			return fmt.Errorf("src_endpoint.ip: %w", err)
		}
	}
	if o.Dst.IP != "" {
		if ev.RemoteIP, err = netip.ParseAddr(o.Dst.IP); err != nil {
			return fmt.Errorf("dst_endpoint.ip: %w", err)
		}
	}
	switch {
	case activity == 4 || activity == 5 || status == 2:
		ev.ActionType = ActionConnectionFailed
	case activity == 1 || activity == 6 || activity == 2 || activity == 3:
		ev.ActionType = ActionConnectionSuccess
	default:
		ev.ActionType = ActionConnectionAttempt
	}
	return nil
}

// ocsfTime reads OCSF's time, epoch milliseconds, as any JSON number
// ("1767609000000", "1767609000000.5", "1.767609e12"), rounded to the
// nanosecond.
func ocsfTime(n json.Number) (time.Time, error) {
	b := []byte(n)
	if ms, ok := jsonInt(b); ok && ms >= 0 && ms < maxEpoch*1000 {
		return time.UnixMilli(ms).UTC(), nil
	}
	if isJSONNumber(b) {
		if f, err := strconv.ParseFloat(string(b), 64); err == nil && f >= 0 && f < maxEpoch*1000 {
			return epochFloat(f, 1e-3), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: not epoch milliseconds", n)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
