package egress_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/wardgate/wardgate/egress"
)

func ExampleDestination() {
	fmt.Println(egress.Destination("x7f3k2.appsync-api.us-east-1.avsvmcloud.com", netip.Addr{}))
	fmt.Println(egress.Destination("", netip.MustParseAddr("216.126.225.148")))
	// Output:
	// avsvmcloud.com
	// 216.126.225.148
}

func ExampleScan() {
	log := "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_bytes\tresp_bytes\tconn_state\n" +
		"1540469302.538640\t192.168.1.132\t58687\t216.239.35.4\t123\tudp\t48\t48\tSF\n" +
		"garbage\n"
	st, err := egress.Scan(strings.NewReader(log), func(ev *egress.Event) error {
		fmt.Println(ev.Time.Format("2006-01-02T15:04:05Z"), ev.LocalIP, "->", ev.RemoteIP, ev.RemotePort, ev.SentBytes, ev.ActionType)
		return nil
	})
	fmt.Println(st, err)
	// Output:
	// 2018-10-25T12:08:22Z 192.168.1.132 -> 216.239.35.4 123 48 ConnectionSuccess
	// zeek-tsv: 4 lines, 1 events, 2 skipped, 1 malformed (first at lines [4]) <nil>
}
