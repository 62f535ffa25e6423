package sbom

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/wardgate/wardgate/firmware"
)

// ErrUnsafeArchive is wrapped by errors about a firmware image Generate
// refuses to unpack: an entry escaping the target directory, a link leading
// out of it, or a limit crossed (a *firmware.LimitError names which).
var ErrUnsafeArchive = firmware.ErrUnsafe

// Archive limits: a real firmware image is at most a few GiB and tens of
// thousands of files; anything beyond is treated as an archive bomb. See
// firmware.DefaultLimits for the depth and compression ratio limits.
const (
	DefaultMaxArchiveBytes = firmware.DefaultMaxBytes
	DefaultMaxArchiveFiles = firmware.DefaultMaxFiles
)

// unpackSource unpacks an archive: or firmware: source into a new
// directory under cfg.tempDir (firmware.TreeDir). For a firmware: source in no known format it
// returns a nil result (the file is then scanned as one file); for an
// archive: source that is an error.
func unpackSource(ctx context.Context, scheme, target string, cfg generateConfig) (string, *firmware.Result, func(), error) {
	st, err := os.Stat(target)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	if !st.Mode().IsRegular() {
		return "", nil, nil, fmt.Errorf("%w: %s:%s is not a regular file", ErrBadSource, scheme, target)
	}
	dir, cleanup, err := firmware.TreeDir(cfg.tempDir, "sbom")
	if err != nil {
		return "", nil, nil, err
	}
	res, err := firmware.Unpack(ctx, target, dir, cfg.limits)
	switch {
	case errors.Is(err, firmware.ErrNotFirmware) && scheme == "firmware":
		cleanup()
		return "", nil, func() {}, nil
	case errors.Is(err, firmware.ErrNotFirmware):
		cleanup()
		return "", nil, nil, fmt.Errorf("%w: %s: %v", ErrBadSource, target, err)
	case err != nil:
		cleanup()
		return "", nil, nil, err
	}
	cfg.logger.Debug("unpacked firmware", "source", target, "dir", dir, "layers", len(res.Layers), "files", res.Files, "bytes", res.Bytes)
	return dir, res, cleanup, nil
}
