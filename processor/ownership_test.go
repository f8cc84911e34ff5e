package main

import (
	"fmt"
	"testing"
)

// Every partition has exactly one owner among the members, and the shares
// differ by at most one.
func TestAssignCoversEveryPartitionOnce(t *testing.T) {
	for _, n := range []int{1, 7, 8, 16} {
		for members := 1; members <= 5; members++ {
			ids := make([]string, members)
			for i := range ids {
				ids[i] = fmt.Sprintf("r%d", i)
			}
			owners := make([]int, n)
			minShare, maxShare := n, 0
			for _, id := range ids {
				mine := assign(n, ids, id)
				minShare, maxShare = min(minShare, len(mine)), max(maxShare, len(mine))
				for p := range mine {
					if p < 0 || p >= n {
						t.Fatalf("assign gave partition %d of %d", p, n)
					}
					owners[p]++
				}
			}
			for p, c := range owners {
				if c != 1 {
					t.Fatalf("n=%d members=%d: partition %d has %d owners", n, members, p, c)
				}
			}
			if maxShare-minShare > 1 {
				t.Fatalf("n=%d members=%d: shares from %d to %d", n, members, minShare, maxShare)
			}
		}
	}
	if got := assign(8, []string{"a", "b"}, "c"); len(got) != 0 {
		t.Fatalf("a non-member got %v", got)
	}
}
