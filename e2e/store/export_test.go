package store

// SealedNames returns the names under which a sealed store keeps key of
// bucket in its inner store, for tests that tamper with the inner store.
func SealedNames(s Store, bucket, key string) (hiddenBucket, hiddenKey string) {
	ss := s.(*sealedStore)
	return ss.hiddenBucket(bucket), ss.hiddenKey(bucket, key)
}
