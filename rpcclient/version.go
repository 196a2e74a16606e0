package rpcclient

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Version is an lnd release version.
type Version struct {
	Major, Minor, Patch int
}

// ParseVersion parses lnd's GetInfo version, such as
// "0.21.2-beta commit=v0.21.2-beta".
func ParseVersion(s string) (Version, error) {
	field := strings.Fields(s)
	if len(field) == 0 {
		return Version{}, fmt.Errorf("empty lnd version")
	}
	core := field[0]
	if i := strings.IndexByte(core, '-'); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("unparseable lnd version %q", s)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("unparseable lnd version %q",
				s)
		}
		nums[i] = n
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

func decodeHex(s string) ([]byte, error) {
	return hex.DecodeString(s)
}
