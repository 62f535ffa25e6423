package wardgate.lib_test

import data.wardgate.lib

test_semver_ordering if {
	lib.version_compare("2.10.0", "2.9.1") == 1
	lib.version_compare("2.4.0", "2.4.0") == 0
	lib.version_compare("2.4.0-rc.1", "2.4.0") == -1
	lib.version_compare("v1.2.3", "1.2.4") == -1
}

test_short_versions_are_padded if {
	lib.version_compare("2.4", "2.4.0") == 0
	lib.version_compare("7", "6.9.9") == 1
	lib.as_semver("2.4") == "2.4.0"
	lib.as_semver("7") == "7.0.0"
}

test_dotted_numbers_fallback if {
	lib.version_compare("2.4.0.1", "2.4.0") == 1
	lib.version_compare("2.4.0.1", "2.4.0.10") == -1
	lib.version_compare("01.2.3.4", "1.2.3.4") == 0
}

test_incomparable_is_undefined if {
	not lib.comparable("build-77", "2.4.0")
	not lib.comparable("2.4.0", "")
	lib.comparable("2024.11", "2024.2")
}

test_matches_exact_and_regexp if {
	lib.matches("a@b", "", "a@b")
	not lib.matches("a@b", "", "a@bc")
	lib.matches("", `.*@b\.example`, "ci@b.example")
	not lib.matches("", `.*@b\.example`, "ci@b.example.evil")
}

test_purl_identity if {
	lib.purl_identity("pkg:generic/xz-utils@5.6.1?arch=arm#sub") == "pkg:generic/xz-utils"
	lib.purl_identity("pkg:generic/xz-utils") == "pkg:generic/xz-utils"
}

test_semver_fast_path_agrees if {
	lib.version_compare("v2.4.0", "2.4.0") == 0
	lib.version_compare("2.4.0+build.1", "2.4.0") == 0
	lib.version_compare("vv2.4.0", "2.3.0") == 1
}
