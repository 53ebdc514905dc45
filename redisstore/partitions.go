package redisstore

import "strconv"

// slots is the number of hash slots of Redis Cluster.
const slots = 16384

// PartitionTags returns the hash tags of n partitions: tag i is the first
// name "p<i>.<k>" whose slot lies in the i-th n-th of the slot space. On a
// cluster whose masters own contiguous, even slot ranges (what redis-cli
// --cluster create makes), the partitions, their keys and their asynq
// queues (named by the tag) therefore spread evenly over the masters.
func PartitionTags(n int) []string {
	tags := make([]string, n)
	for i := range n {
		lo, hi := i*slots/n, (i+1)*slots/n
		for k := 0; ; k++ {
			tag := "p" + strconv.Itoa(i) + "." + strconv.Itoa(k)
			if s := Slot(tag); s >= lo && s < hi {
				tags[i] = tag
				break
			}
		}
	}
	return tags
}

// Slot is the Redis Cluster slot of a key (of its hash tag, if it has one).
func Slot(key string) int {
	if i := indexByte(key, '{'); i >= 0 {
		if j := indexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % slots)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
