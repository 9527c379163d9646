package state

import (
	"hash/maphash"
	"sync/atomic"
)

// filter is a fixed-size Bloom filter over the dedup keys in the store. Most message ids are
// new, and a Pebble Get that finds nothing still searches every memtable and sstable level;
// the filter answers "certainly new" from memory for almost all of them. It never forgets a key
// (no false negatives), its memory does not grow with the number of ids, and when very many
// ids are remembered its false-positive rate rises, which only costs Gets.
type filter struct {
	bits []atomic.Uint64
	mask uint64
	seed maphash.Seed
}

const (
	filterBits   = 1 << 27 // 16 MiB: ~1% false positives at 14 million receipts
	filterHashes = 7
)

func newFilter() *filter {
	return &filter{bits: make([]atomic.Uint64, filterBits/64), mask: filterBits - 1, seed: maphash.MakeSeed()}
}

// positions derives the k bit positions from two halves of one 64-bit hash (Kirsch–Mitzenmacher).
func (f *filter) hashes(key []byte) (uint64, uint64) {
	h := maphash.Bytes(f.seed, key)
	return h, h>>33 | h<<31 | 1
}

func (f *filter) add(key []byte) {
	h1, h2 := f.hashes(key)
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) & f.mask
		f.bits[b/64].Or(1 << (b % 64))
	}
}

func (f *filter) mayContain(key []byte) bool {
	h1, h2 := f.hashes(key)
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) & f.mask
		if f.bits[b/64].Load()&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}
