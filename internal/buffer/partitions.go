package buffer

import (
	"errors"
	"fmt"
)

// CheckPartitions validates the partitions given to PartitionConsumer.ConsumePartitions for a
// topic of n partitions. An empty list is an error, not "every partition": an instance that holds
// no lease must not end up reading partitions other instances own.
func CheckPartitions(partitions []int, n int) error {
	if len(partitions) == 0 {
		return errors.New("no partitions")
	}
	seen := make(map[int]bool, len(partitions))
	for _, p := range partitions {
		if p < 0 || p >= n {
			return fmt.Errorf("partition %d out of range 0-%d", p, n-1)
		}
		if seen[p] {
			return fmt.Errorf("partition %d listed twice", p)
		}
		seen[p] = true
	}
	return nil
}
