package firmware

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// Format is a firmware layer's format.
type Format string

// Formats Unpack recognises.
const (
	Gzip     Format = "gzip"
	XZ       Format = "xz"
	Bzip2    Format = "bzip2"
	Zstd     Format = "zstd"
	LZ4      Format = "lz4"
	Tar      Format = "tar"
	CPIONewc Format = "cpio-newc"
	CPIOOdc  Format = "cpio-odc"
	Zip      Format = "zip"
	Squashfs Format = "squashfs"
	Ext      Format = "ext"
	FAT      Format = "fat"
	ISO9660  Format = "iso9660"
	UImage   Format = "uimage" // U-Boot legacy image
	FIT      Format = "fit"    // U-Boot FIT image (flattened device tree)
)

// Formats lists every format, in the order Sniff tries them.
var Formats = []Format{Gzip, XZ, Bzip2, Zstd, LZ4, Tar, CPIONewc, CPIOOdc, Zip, Squashfs, Ext, FAT, ISO9660, UImage, FIT}

// isStream reports the compressed-stream formats: one payload, no names.
func (f Format) isStream() bool {
	switch f {
	case Gzip, XZ, Bzip2, Zstd, LZ4:
		return true
	}
	return false
}

// sniffLen is how much of a file Sniff needs: the ISO 9660 volume
// descriptor at 32 KiB is the deepest magic.
const sniffLen = 32<<10 + 2048

// Magic numbers, each from its format's specification.
var (
	magicGzip      = []byte{0x1f, 0x8b, 0x08}
	magicXZ        = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2     = []byte("BZh")
	magicZstd      = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicLZ4       = []byte{0x04, 0x22, 0x4d, 0x18}
	magicLZ4Legacy = []byte{0x02, 0x21, 0x4c, 0x18} // the Linux kernel's and initramfs' lz4
	magicNewc      = []byte("070701")
	magicNewcCRC   = []byte("070702")
	magicOdc       = []byte("070707")
	magicZip       = []byte("PK\x03\x04")
	magicZipEmpty  = []byte("PK\x05\x06")
	magicSquashfs  = []byte("hsqs")
	magicUImage    = []byte{0x27, 0x05, 0x19, 0x56}
	magicFDT       = []byte{0xd0, 0x0d, 0xfe, 0xed}
)

// Sniff tells the format of data starting at head (up to sniffLen bytes of
// it; size is the whole payload's size when known, else -1). It checks more
// than the magic where the magic is short: a U-Boot header's CRC, a device
// tree's header, a squashfs superblock's version, a FAT boot sector.
func Sniff(head []byte, size int64) (Format, bool) {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return Gzip, true
	case bytes.HasPrefix(head, magicXZ):
		return XZ, true
	case len(head) >= 10 && bytes.HasPrefix(head, magicBzip2) && head[3] >= '1' && head[3] <= '9' && bytes.Equal(head[4:10], []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}):
		return Bzip2, true
	case bytes.HasPrefix(head, magicZstd):
		return Zstd, true
	case bytes.HasPrefix(head, magicLZ4), bytes.HasPrefix(head, magicLZ4Legacy):
		return LZ4, true
	case bytes.HasPrefix(head, magicNewc), bytes.HasPrefix(head, magicNewcCRC):
		return CPIONewc, true
	case bytes.HasPrefix(head, magicOdc):
		return CPIOOdc, true
	case bytes.HasPrefix(head, magicZip), bytes.HasPrefix(head, magicZipEmpty):
		return Zip, true
	case isSquashfs(head):
		return Squashfs, true
	case isUImage(head):
		return UImage, true
	case isFDT(head, size):
		return FIT, true
	case isTar(head):
		return Tar, true
	case isExt(head):
		return Ext, true
	case isISO(head):
		return ISO9660, true
	case isFAT(head):
		return FAT, true
	}
	return "", false
}

// readHead reads the first sniffLen bytes at off.
func readHead(r io.ReaderAt, off, size int64) []byte {
	n := int64(sniffLen)
	if size >= 0 && size-off < n {
		n = size - off
	}
	if n <= 0 {
		return nil
	}
	b := make([]byte, n)
	m, _ := r.ReadAt(b, off)
	return b[:m]
}

func isTar(h []byte) bool {
	if len(h) < 512 || (string(h[257:262]) != "ustar") {
		return false
	}
	// The header checksum: the sum of the header's bytes with the checksum
	// field read as spaces.
	var sum int64
	for i, c := range h[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	want := parseOctal(h[148:156])
	return want == sum
}

func parseOctal(b []byte) int64 {
	var v int64
	b = bytes.Trim(b, " \x00")
	for _, c := range b {
		if c < '0' || c > '7' {
			return -1
		}
		v = v*8 + int64(c-'0')
	}
	return v
}

// squashfs 4.0 superblock: magic, then at 28 the major version (4) and at
// 30 the minor (0); at 12 the block size, a power of two from 4 KiB to 1 MiB.
func isSquashfs(h []byte) bool {
	if len(h) < 96 || !bytes.HasPrefix(h, magicSquashfs) {
		return false
	}
	bs := binary.LittleEndian.Uint32(h[12:16])
	return binary.LittleEndian.Uint16(h[28:30]) == 4 && bs >= 4096 && bs <= 1<<20 && bs&(bs-1) == 0
}

// squashfsSize is the superblock's bytes_used.
func squashfsSize(h []byte) int64 {
	if len(h) < 48 {
		return -1
	}
	return int64(binary.LittleEndian.Uint64(h[40:48]))
}

// ext2/3/4: the superblock at 1024 has the magic 0xEF53 at offset 56.
func isExt(h []byte) bool {
	if len(h) < 2048 || binary.LittleEndian.Uint16(h[1024+56:]) != 0xef53 {
		return false
	}
	logBlock := binary.LittleEndian.Uint32(h[1024+24:])
	return logBlock <= 6 && binary.LittleEndian.Uint32(h[1024+4:]) > 0
}

// extSize is blocks_count (lo, and hi when 64-bit) times the block size.
func extSize(h []byte) int64 {
	if !isExt(h) {
		return -1
	}
	sb := h[1024:]
	blocks := uint64(binary.LittleEndian.Uint32(sb[4:]))
	if binary.LittleEndian.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	return int64(blocks) << (10 + binary.LittleEndian.Uint32(sb[24:]))
}

// ISO 9660: a volume descriptor "CD001" at sector 16.
func isISO(h []byte) bool {
	return len(h) >= 32769+5 && string(h[32769:32774]) == "CD001"
}

// FAT: a boot sector ending 0x55AA whose BIOS parameter block is sane (bytes
// per sector a power of two from 512 to 4096, sectors per cluster a power
// of two, at least one FAT) and that names its type.
func isFAT(h []byte) bool {
	if len(h) < 512 || h[510] != 0x55 || h[511] != 0xaa {
		return false
	}
	bps := binary.LittleEndian.Uint16(h[11:13])
	spc := h[13]
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 || h[16] == 0 {
		return false
	}
	return bytes.HasPrefix(h[54:], []byte("FAT")) || bytes.HasPrefix(h[82:], []byte("FAT32"))
}

// fatSize is the boot sector's total sectors times the sector size.
func fatSize(h []byte) int64 {
	bps := int64(binary.LittleEndian.Uint16(h[11:13]))
	n := int64(binary.LittleEndian.Uint16(h[19:21]))
	if n == 0 {
		n = int64(binary.LittleEndian.Uint32(h[32:36]))
	}
	return bps * n
}

// uImageHeaderLen is the U-Boot legacy header's size (include/image.h).
const uImageHeaderLen = 64

// isUImage checks the magic and the header CRC (computed with the CRC
// field zeroed).
func isUImage(h []byte) bool {
	if len(h) < uImageHeaderLen || !bytes.HasPrefix(h, magicUImage) {
		return false
	}
	var hdr [uImageHeaderLen]byte
	copy(hdr[:], h)
	want := binary.BigEndian.Uint32(hdr[4:8])
	clear(hdr[4:8])
	return crc32.ChecksumIEEE(hdr[:]) == want
}

// isFDT checks a flattened device tree header: magic, a total size that
// fits, version 16 or 17, and blocks inside the total size.
func isFDT(h []byte, size int64) bool {
	if len(h) < 40 || !bytes.HasPrefix(h, magicFDT) {
		return false
	}
	_, err := parseFDTHeader(h, size)
	return err == nil
}
