package store

// SealedNames returns the names under which a sealed store keeps key of
// bucket in its inner store, for tests that tamper with the inner store.
func SealedNames(s Store, bucket, key string) (hiddenBucket, hiddenKey string) {
	ss := s.(*sealedStore)
	return ss.hiddenBucket(bucket), ss.hiddenKey(bucket, key)
}

// BoltTxID returns the id of the last committed transaction of a bolt
// store (it grows by one with every commit).
func BoltTxID(s Store) int {
	btx, err := s.(*boltStore).db.Begin(false)
	if err != nil {
		panic(err)
	}
	defer btx.Rollback()
	return btx.ID()
}
