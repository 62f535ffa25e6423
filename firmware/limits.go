package firmware

import (
	"errors"
	"fmt"
)

// ErrUnsafe is wrapped by every error about a firmware image Unpack refuses:
// an entry escaping the directory, a link leading out of it, or a limit
// crossed.
var ErrUnsafe = errors.New("unsafe archive")

// ErrNotFirmware is returned by Unpack for a file in none of the formats it
// knows, at its start or at any offset.
var ErrNotFirmware = errors.New("not a firmware image or archive")

// Default limits. A real firmware image is at most a few GiB and tens of
// thousands of files, compresses by less than 20 times and nests a few
// layers deep (a vendor header, a compressed stream, an archive, a
// filesystem image).
const (
	DefaultMaxBytes = 8 << 30
	DefaultMaxFiles = 200_000
	DefaultMaxDepth = 8
	DefaultMaxRatio = 100
	// RatioFloor is how much may always be unpacked, whatever the ratio:
	// a 100-byte gzip of a 40 KiB file is no bomb.
	RatioFloor = 16 << 20
)

// Limits bound what Unpack writes. A zero field takes its default.
type Limits struct {
	// MaxBytes bounds the bytes written, intermediate files included.
	MaxBytes int64
	// MaxFiles bounds the entries written: files, directories and links.
	MaxFiles int
	// MaxDepth bounds how many formats deep the layers nest (a tar.gz is 2).
	MaxDepth int
	// MaxRatio bounds the bytes written per byte of input, once more than
	// RatioFloor is written.
	MaxRatio int
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxBytes: DefaultMaxBytes, MaxFiles: DefaultMaxFiles, MaxDepth: DefaultMaxDepth, MaxRatio: DefaultMaxRatio}
}

// withDefaults fills zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = d.MaxRatio
	}
	return l
}

// Validate refuses negative limits.
func (l Limits) Validate() error {
	if l.MaxBytes < 0 || l.MaxFiles < 0 || l.MaxDepth < 0 || l.MaxRatio < 0 {
		return fmt.Errorf("firmware: limits %+v: want >= 0 (0 takes the default)", l)
	}
	return nil
}

// Limit names, as LimitError.Limit reports them.
const (
	LimitBytes = "bytes"
	LimitFiles = "files"
	LimitDepth = "depth"
	LimitRatio = "ratio"
)

// LimitError is returned when unpacking would cross a limit. It wraps
// ErrUnsafe.
type LimitError struct {
	Limit string // LimitBytes, LimitFiles, LimitDepth or LimitRatio
	Max   int64  // the limit's value
	// Input is the input's size, for the ratio limit.
	Input int64
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitBytes:
		return fmt.Sprintf("%v: more than %s unpacked (the byte limit)", ErrUnsafe, HumanBytes(e.Max))
	case LimitFiles:
		return fmt.Sprintf("%v: more than %d files (the file limit)", ErrUnsafe, e.Max)
	case LimitDepth:
		return fmt.Sprintf("%v: layers nested more than %d deep (the depth limit)", ErrUnsafe, e.Max)
	case LimitRatio:
		return fmt.Sprintf("%v: more than %d times the input's %s unpacked (the compression ratio limit)", ErrUnsafe, e.Max, HumanBytes(e.Input))
	}
	return fmt.Sprintf("%v: %s limit %d", ErrUnsafe, e.Limit, e.Max)
}

// Unwrap makes errors.Is(err, ErrUnsafe) hold.
func (e *LimitError) Unwrap() error { return ErrUnsafe }

// unsafeError is a refused entry or link.
func unsafeError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, fmt.Sprintf(format, args...))
}

// HumanBytes writes n in B, KiB, MiB or GiB.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
