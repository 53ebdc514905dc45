package redisstore

import "testing"

func TestSlotMatchesRedis(t *testing.T) {
	// Values from CLUSTER KEYSLOT on Redis 7.
	for key, want := range map[string]int{"foo": 12182, "bar": 5061, "{user1000}.following": 3443, "hello": 866, "": 0, "{}x": 10595} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestPartitionTagsSpread(t *testing.T) {
	for _, n := range []int{1, 3, 4, 16, 64} {
		tags := PartitionTags(n)
		seen := map[string]bool{}
		for i, tag := range tags {
			s := Slot(tag)
			if s < i*slots/n || s >= (i+1)*slots/n || seen[tag] {
				t.Errorf("n=%d: tag %d %q has slot %d, outside [%d,%d) or repeated", n, i, tag, s, i*slots/n, (i+1)*slots/n)
			}
			seen[tag] = true
		}
	}
}
