// Command mediagen writes synthetic test media for calls: an Ogg Opus file
// and an IVF VP8 file of pseudo-random payloads (see package mediagen).
//
//	go run ./internal/rtcpeer/mediagen/cmd/mediagen -ogg a.ogg -ivf v.ivf -duration 10s
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/securejingle/securejingle/internal/rtcpeer/mediagen"
)

func main() {
	ogg := flag.String("ogg", "", "write Ogg Opus audio to this file")
	ivf := flag.String("ivf", "", "write IVF VP8 video to this file")
	d := flag.Duration("duration", 0, "length of the media (default 5s)")
	seed := flag.Uint64("seed", 1, "seed of the pseudo-random payloads")
	flag.Parse()
	if *ogg == "" && *ivf == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mediagen [-ogg FILE] [-ivf FILE] [-duration D] [-seed N]")
		os.Exit(2)
	}
	if *d <= 0 {
		*d = 5e9
	}
	f, err := mediagen.WriteFiles(*ogg, *ivf, *d, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if f.Ogg != "" {
		fmt.Printf("%s: %d Opus packets, %v\n", f.Ogg, f.Packets, f.Duration)
	}
	if f.IVF != "" {
		fmt.Printf("%s: %d VP8 frames, %dx%d at %d fps\n", f.IVF, f.Frames, f.Width, f.Height, f.FPS)
	}
}
