package rtcpeer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/securejingle/securejingle/internal/rtcpeer"
	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

// A recording that lost two packets compared with its source.
func ExampleComparePayloads() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src.ogg")
	f, _ := mediagen.WriteFiles(src, "", time.Second, 1)

	pkts := mediagen.OpusPackets(f.Packets, 1)
	pkts = append(pkts[:10:10], pkts[12:]...) // two lost
	rec, _ := os.Create(filepath.Join(dir, "rec.ogg"))
	mediagen.WriteOgg(rec, pkts, 1)
	rec.Close()

	m, err := rtcpeer.ComparePayloads(src, rec.Name())
	fmt.Printf("%+v %v\n", m, err)
	// Output: {Source:50 Matched:48 Missing:2} <nil>
}
