package filexfer

// FreeSpace returns the bytes available to this user in the file system
// of dir; known is false on systems where it cannot be asked.
func FreeSpace(dir string) (free uint64, known bool, err error) { return freeSpace(dir) }
