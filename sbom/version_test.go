package sbom

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		purlType, a, b string
		want           int
	}{
		{"golang", "v0.0.0-20200707034311-ab3426394381", "v0.0.0-20210405180319-a5a99cb37ef4", -1},
		{"golang", "v1.1.30", "v1.1.41", -1},
		{"golang", "v2.0.0+incompatible", "v1.9.9", 1},
		{"npm", "4.9.0", "4.17.21", -1},
		{"npm", "1.0.0-rc.1", "1.0.0", -1},
		{"cargo", "1.0.0", "1.0.0", 0},
		{"deb", "1:1.2.13.dfsg-1", "1.3.1-1", 1},
		{"deb", "1.0~rc1-1", "1.0-1", -1},
		{"deb", "2.36-9+deb12u4", "2.36-9+deb12u10", -1},
		{"deb", "1.0-1", "1.0-1", 0},
		{"rpm", "3.0.7-27.el9", "3.0.7-28.el9", -1},
		{"rpm", "1:1.0-1", "2.0-1", 1},
		{"rpm", "1.10-1", "1.9-1", 1},
		{"pypi", "2.0.0rc1", "2.0.0", -1},
		{"pypi", "1.0.post1", "1.0", 1},
		{"pypi", "1.0", "1.0.0", 0},
		{"maven", "1.0-SNAPSHOT", "1.0", -1},
		{"maven", "1.0-alpha-1", "1.0-beta-1", -1},
		{"maven", "1.0-rc1", "1.0-cr1", 0},
		{"maven", "1.0", "1.0-sp1", -1},
		{"maven", "2.12.7.1", "2.12.7", 1},
		{"generic", "1.0rc1", "1.0", -1},
		{"generic", "1.0", "1.0.0", 0},
		{"generic", "10.2", "9.9", 1},
		{"apk", "1.36.1-r5", "1.36.1-r15", -1},
	}
	for _, tc := range tests {
		if got := CompareVersions(tc.purlType, tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%s, %q, %q) = %d, want %d", tc.purlType, tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.purlType, tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%s, %q, %q) = %d, want %d (antisymmetry)", tc.purlType, tc.b, tc.a, got, -tc.want)
		}
	}
}
