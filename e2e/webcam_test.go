package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"testing"

	"github.com/oeproxy/oeproxy/oesim/printer"
)

// webcamArea is where a screenshot shows an oesim webcam frame, found by its colours.
type webcamArea struct {
	Box         image.Rectangle
	Background  int // pixels of the frame's blue-grey background inside Box
	Digit       int // pixels of the frame's yellow frame number inside Box
	Black       int // pure black pixels inside Box (the <img>'s CSS background while no frame is shown)
	Mean, Stdev float64
}

// oesim frames (printer.JPEGFrame) have the background R 40..99, G 60..119, B 110 and a yellow (255,240,80)
// number; JPEG and scaling move values by a few units. Grey anti-aliased text has R≈G≈B, so B-R rules it out.
func isFrameBackground(c color.RGBA) bool {
	r, g, b := int(c.R), int(c.G), int(c.B)
	return b >= 95 && b <= 125 && r <= 110 && g <= 135 && b-r >= 6
}

func isFrameDigit(c color.RGBA) bool { return c.R >= 200 && c.G >= 190 && c.B <= 140 }

// findWebcam locates the frame: the bounding box of the rows and columns that hold a run of frame-background
// pixels (at least minLine each, so stray pixels elsewhere on the page do not count).
func findWebcam(img image.Image) (webcamArea, error) {
	const minLine = 40
	b := img.Bounds()
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, img, b.Min, draw.Src)
	rows := make([]int, b.Dy())
	cols := make([]int, b.Dx())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if isFrameBackground(rgba.RGBAAt(x, y)) {
				rows[y-b.Min.Y]++
				cols[x-b.Min.X]++
			}
		}
	}
	span := func(counts []int) (lo, hi int) {
		lo, hi = -1, -1
		for i, n := range counts {
			if n >= minLine {
				if lo < 0 {
					lo = i
				}
				hi = i + 1
			}
		}
		return lo, hi
	}
	x0, x1 := span(cols)
	y0, y1 := span(rows)
	if x0 < 0 || y0 < 0 {
		return webcamArea{}, fmt.Errorf("no webcam frame in the %dx%d screenshot (no run of %d frame-coloured pixels)", b.Dx(), b.Dy(), minLine)
	}
	a := webcamArea{Box: image.Rect(x0, y0, x1, y1).Add(b.Min)}
	var sum, sumSq float64
	for y := a.Box.Min.Y; y < a.Box.Max.Y; y++ {
		for x := a.Box.Min.X; x < a.Box.Max.X; x++ {
			c := rgba.RGBAAt(x, y)
			switch {
			case isFrameBackground(c):
				a.Background++
			case isFrameDigit(c):
				a.Digit++
			case c.R < 8 && c.G < 8 && c.B < 8:
				a.Black++
			}
			l := 0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B)
			sum += l
			sumSq += l * l
		}
	}
	n := float64(a.Box.Dx() * a.Box.Dy())
	a.Mean = sum / n
	if v := sumSq/n - a.Mean*a.Mean; v > 0 {
		a.Stdev = math.Sqrt(v)
	}
	return a, nil
}

// check says what is wrong with the area for it to be a displayed frame of the size the page asks for
// (320x240 CSS pixels at device scale 1, within a few pixels).
func (a webcamArea) check(wantW, wantH int) error {
	total := a.Box.Dx() * a.Box.Dy()
	switch {
	case abs(a.Box.Dx()-wantW) > 4 || abs(a.Box.Dy()-wantH) > 4:
		return fmt.Errorf("frame area %v is %dx%d, want about %dx%d", a.Box, a.Box.Dx(), a.Box.Dy(), wantW, wantH)
	case a.Background*10 < total*7:
		return fmt.Errorf("only %d of %d pixels in %v have the frame's background colour", a.Background, total, a.Box)
	case a.Digit < 100:
		return fmt.Errorf("the frame number is missing: %d yellow pixels in %v", a.Digit, a.Box)
	case a.Black*100 > total:
		return fmt.Errorf("%d of %d pixels in %v are black (no frame drawn)", a.Black, total, a.Box)
	case a.Stdev < 5:
		return fmt.Errorf("the area %v is flat (luma stdev %.1f)", a.Box, a.Stdev)
	}
	return nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// TestFindWebcam proves the screenshot check can fail: a page with a black <img> box, a blank page and a
// frame of the wrong size are refused; a real oesim frame drawn at 2x on a page-like background is found.
func TestFindWebcam(t *testing.T) {
	frame, err := jpeg.Decode(bytes.NewReader(printer.JPEGFrame(7)))
	if err != nil {
		t.Fatal(err)
	}
	page := func(draws func(*image.RGBA)) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, 1000, 700))
		draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{0xf4, 0xf5, 0xf7, 0xff}), image.Point{}, draw.Src)
		draw.Draw(img, image.Rect(24, 24, 420, 450), image.NewUniform(color.White), image.Point{}, draw.Src)
		// grey "text" that must not count as frame background
		draw.Draw(img, image.Rect(40, 60, 400, 100), image.NewUniform(color.RGBA{100, 100, 104, 255}), image.Point{}, draw.Src)
		if draws != nil {
			draws(img)
		}
		return img
	}
	scaled := func(at image.Point, w, h int) func(*image.RGBA) {
		return func(img *image.RGBA) {
			fb := frame.Bounds()
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					img.Set(at.X+x, at.Y+y, frame.At(fb.Min.X+x*fb.Dx()/w, fb.Min.Y+y*fb.Dy()/h))
				}
			}
		}
	}
	black := func(img *image.RGBA) {
		draw.Draw(img, image.Rect(40, 156, 360, 396), image.NewUniform(color.Black), image.Point{}, draw.Src)
	}
	for _, tc := range []struct {
		name string
		img  image.Image
		ok   bool
	}{
		{"frame shown", page(scaled(image.Pt(40, 156), 320, 240)), true},
		{"black img box", page(black), false},
		{"no img", page(nil), false},
		{"frame at natural size", page(scaled(image.Pt(40, 156), 160, 120)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := findWebcam(tc.img)
			if err == nil {
				err = a.check(320, 240)
			}
			if (err == nil) != tc.ok {
				t.Fatalf("ok = %v, want %v (area %+v, err %v)", err == nil, tc.ok, a, err)
			}
			if tc.ok && a.Box != image.Rect(40, 156, 360, 396) {
				t.Fatalf("box %v, want (40,156)-(360,396)", a.Box)
			}
		})
	}
}
