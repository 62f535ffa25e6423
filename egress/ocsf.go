package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// OCSFNetworkActivity is OCSF's class_uid for Network Activity.
const OCSFNetworkActivity = 4001

type ocsfEndpoint struct {
	IP       string `json:"ip"`
	Port     uint16 `json:"port"`
	Hostname string `json:"hostname"`
	Domain   string `json:"domain"`
	Name     string `json:"name"`
	UID      string `json:"uid"`
}

// ocsfEvent is the subset of an OCSF 1.x Network Activity event wardgate
// reads.
type ocsfEvent struct {
	ClassUID   int          `json:"class_uid"`
	ActivityID int          `json:"activity_id"`
	StatusID   int          `json:"status_id"`
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
		BytesOut int64 `json:"bytes_out"`
		BytesIn  int64 `json:"bytes_in"`
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
	if o.ClassUID != OCSFNetworkActivity {
		return errOtherClass
	}
	ms, err := o.Time.Int64()
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	*ev = Event{
		Time:       time.UnixMilli(ms).UTC(),
		RemotePort: o.Dst.Port, LocalPort: o.Src.Port,
		RemoteURL: firstNonEmpty(o.Dst.Hostname, o.Dst.Domain),
		Protocol:  o.ConnectionInfo.ProtocolName,
		Process:   o.Actor.Process.File.Name,
		SentBytes: o.Traffic.BytesOut, ReceivedBytes: o.Traffic.BytesIn,
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
	case o.ActivityID == 4 || o.ActivityID == 5 || o.StatusID == 2:
		ev.ActionType = ActionConnectionFailed
	case o.ActivityID == 1 || o.ActivityID == 6 || o.ActivityID == 2 || o.ActivityID == 3:
		ev.ActionType = ActionConnectionSuccess
	default:
		ev.ActionType = ActionConnectionAttempt
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
