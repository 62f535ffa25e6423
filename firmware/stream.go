package firmware

import (
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// zstdMaxWindow bounds the memory a zstd frame may ask for (the format
// allows 3.75 TiB; real firmware uses at most a few MiB).
const zstdMaxWindow = 128 << 20

// decompress opens a compressed stream of format f. Every decoder checks
// its stream's checksum where the format has one, so a truncated or
// corrupted stream is an error at its end, not silent short data.
func decompress(f Format, r io.Reader) (io.ReadCloser, error) {
	switch f {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case XZ:
		zr, err := xz.ReaderConfig{}.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(zr), nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow*2))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	case LZ4:
		return io.NopCloser(lz4.NewReader(r)), nil
	}
	return nil, fmt.Errorf("%s is not a compressed stream", f)
}

// lzmaReader opens a raw LZMA stream (a U-Boot image's lzma compression).
func lzmaReader(r io.Reader) (io.ReadCloser, error) {
	zr, err := lzma.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return io.NopCloser(zr), nil
}
