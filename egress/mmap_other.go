//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package egress

import (
	"errors"
	"os"
)

// mapFile is not available here: the hunt reads the file with read(2).
func mapFile(*os.File, int64) ([]byte, func() error, error) {
	return nil, nil, errors.ErrUnsupported
}

func dropMapped([]byte) {}
