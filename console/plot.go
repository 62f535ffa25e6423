package console

import (
	"bytes"
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The update page's two plots, drawn on the server with gonum/plot as SVG
// (no script runs in the browser; vgsvg escapes every text it writes).
// Each has a text alternative on the page: the same data as a table.

// Okabe-Ito colours (distinguishable with the common colour-vision
// deficiencies); every series also has its own glyph or dash, so colour is
// never the only cue.
var palette = []color.RGBA{
	{0xD5, 0x5E, 0x00, 0xff}, {0x00, 0x72, 0xB2, 0xff}, {0x00, 0x9E, 0x73, 0xff}, {0xCC, 0x79, 0xA7, 0xff},
	{0xE6, 0x9F, 0x00, 0xff}, {0x56, 0xB4, 0xE9, 0xff}, {0xF0, 0xE4, 0x42, 0xff},
}

var glyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.CrossGlyph{}, draw.RingGlyph{}, draw.PlusGlyph{}, draw.BoxGlyph{}}

var dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}}

// maxPlotDevices bounds the rows of the contacts plot (the table lists
// them all, up to maxTableRows).
const maxPlotDevices = 40

// maxPlotHours bounds the volume plot's hourly grid (90 days).
const maxPlotHours = 90 * 24

// series is the plots' data, derived from the update's contacts.
type series struct {
	dests       []string // by first contact
	hours       []hourRow
	installers  int
	baseline    int64 // the volume plot's baseline line: per device-hour p95 times installers
	hasBaseline bool
}

type hourRow struct {
	start   time.Time
	bytes   []int64 // per dest
	conns   []int64
	devices []int
}

func newSeries(ud UpdateDetail) series {
	s := series{installers: len(ud.Devices)}
	first := map[string]time.Time{}
	for _, c := range ud.Contacts {
		if t, ok := first[c.Destination]; !ok || c.First.Before(t) {
			first[c.Destination] = c.First
		}
	}
	for d := range first {
		s.dests = append(s.dests, d)
	}
	slices.SortFunc(s.dests, func(a, b string) int { return cmp.Or(first[a].Compare(first[b]), strings.Compare(a, b)) })
	idx := map[string]int{}
	for i, d := range s.dests {
		idx[d] = i
	}
	rows := map[int64]*hourRow{}
	for _, c := range ud.Contacts {
		i := idx[c.Destination]
		for _, h := range c.Hours {
			k := h.Start.Unix()
			r := rows[k]
			if r == nil {
				r = &hourRow{start: h.Start.UTC(), bytes: make([]int64, len(s.dests)), conns: make([]int64, len(s.dests)), devices: make([]int, len(s.dests))}
				rows[k] = r
			}
			r.bytes[i] += h.Bytes
			r.conns[i] += h.Connections
			r.devices[i]++
		}
	}
	for _, r := range rows {
		s.hours = append(s.hours, *r)
	}
	slices.SortFunc(s.hours, func(a, b hourRow) int { return a.start.Compare(b.start) })
	if b := ud.Baseline; b.HasObservation {
		s.hasBaseline = true
		s.baseline = b.DeviceHourP95 * int64(max(1, s.installers))
	}
	return s
}

// label shortens a name for a plot axis or legend (the table has it whole).
func label(s string) string {
	r := []rune(s)
	if len(r) > 28 {
		return string(r[:27]) + "…"
	}
	return s
}

func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Tick.Marker = plot.TimeTicks{Format: "Jan 2\n15:04 UTC"}
	p.Add(plotter.NewGrid())
	return p
}

const plotWidth, plotHeight, legendWidth = 10 * vg.Inch, 4.5 * vg.Inch, 2.6 * vg.Inch

// writePlot draws p with the legend leg to the right of the data (a
// plot's own legend is drawn over its data).
func writePlot(p *plot.Plot, leg plot.Legend, height vg.Length) ([]byte, error) {
	c := vgsvg.New(plotWidth, height)
	dc := draw.New(c)
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	leg.Top = true
	leg.Left = true
	leg.Draw(draw.Crop(dc, plotWidth-legendWidth+vg.Points(8), 0, 0, -vg.Points(20)))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	return buf.Bytes(), nil
}

type xy struct{ x, y float64 }

func xys(pts []xy) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	for i, p := range pts {
		out[i].X, out[i].Y = p.x, p.y
	}
	return out
}

func unix(t time.Time) float64 { return float64(t.Unix()) }

// contactsSVG: one row per installer (first installer on top); a black
// triangle at its install, a grey line to its first contact with a new
// destination (the dormancy), then one mark per hour with a connection,
// in the destination's colour and glyph.
func contactsSVG(ud UpdateDetail) ([]byte, error) {
	s := newSeries(ud)
	p := newPlot("Devices contacting new destinations, against their install time", "time (UTC)", "")
	leg := plot.NewLegend()
	type dev struct {
		name      string
		installed time.Time
		first     time.Time // zero: no contact
	}
	// One row per installer with traffic to a new destination (the page
	// lists the quiet ones: an install months away would squash the
	// time axis).
	devs := map[string]*dev{}
	for _, c := range ud.Contacts {
		d := devs[c.Device]
		if d == nil {
			d = &dev{name: c.Device, installed: c.Installed}
			devs[c.Device] = d
		}
		if d.first.IsZero() || c.First.Before(d.first) {
			d.first = c.First
		}
	}
	order := make([]*dev, 0, len(devs))
	for _, d := range devs {
		order = append(order, d)
	}
	slices.SortFunc(order, func(a, b *dev) int { return cmp.Or(a.installed.Compare(b.installed), strings.Compare(a.name, b.name)) })
	if len(order) > maxPlotDevices {
		order = order[:maxPlotDevices]
		p.Title.Text += fmt.Sprintf(" (first %d devices)", maxPlotDevices)
	}
	row := map[string]float64{}
	var ticks plot.ConstantTicks
	for i, d := range order {
		y := float64(len(order) - 1 - i)
		row[d.name] = y
		ticks = append(ticks, plot.Tick{Value: y, Label: label(d.name)})
	}
	p.Y.Tick.Marker = ticks
	p.Y.Min, p.Y.Max = -0.7, float64(len(order))-0.3
	var installs []xy
	for _, d := range order {
		if d.installed.IsZero() {
			continue
		}
		installs = append(installs, xy{unix(d.installed), row[d.name]})
		if d.first.IsZero() {
			continue
		}
		ln, err := plotter.NewLine(xys([]xy{{unix(d.installed), row[d.name]}, {unix(d.first), row[d.name]}}))
		if err != nil {
			return nil, err
		}
		ln.Color = color.Gray{0x99}
		ln.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(ln)
	}
	if len(installs) > 0 {
		sc, err := plotter.NewScatter(xys(installs))
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(5), Shape: draw.PyramidGlyph{}}
		p.Add(sc)
		leg.Add("installed the update", sc)
	}
	for i, dest := range s.dests {
		var pts []xy
		for _, c := range ud.Contacts {
			y, ok := row[c.Device]
			if !ok || c.Destination != dest {
				continue
			}
			for _, h := range c.Hours {
				pts = append(pts, xy{unix(h.Start) + 1800, y})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(xys(pts))
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: palette[i%len(palette)], Radius: vg.Points(3), Shape: glyphs[i%len(glyphs)]}
		p.Add(sc)
		leg.Add(label(dest), sc)
	}
	h := max(plotHeight, vg.Length(len(order))*vg.Points(22)+vg.Inch*1.5)
	return writePlot(p, leg, h)
}

// volumeSVG: bytes sent per hour by the update's installers to each new
// destination, one line each (colour and dash), against the class's
// baseline (a dashed black line: the 95th percentile of one device's
// hourly bytes in the baseline window, times the installers).
func volumeSVG(ud UpdateDetail) ([]byte, error) {
	s := newSeries(ud)
	p := newPlot("Bytes sent per hour by the update's installers, per destination", "time (UTC)", "bytes per hour")
	leg := plot.NewLegend()
	if len(s.hours) == 0 {
		return writePlot(p, leg, plotHeight)
	}
	start, end := s.hours[0].start, s.hours[len(s.hours)-1].start
	if n := int(end.Sub(start) / time.Hour); n > maxPlotHours {
		start = end.Add(-maxPlotHours * time.Hour)
		p.Title.Text += " (last 90 days)"
	}
	n := int(end.Sub(start)/time.Hour) + 1
	maxY := 0.0
	for i, dest := range s.dests {
		grid := make([]xy, n)
		for k := range grid {
			grid[k] = xy{unix(start.Add(time.Duration(k) * time.Hour)), 0}
		}
		for _, h := range s.hours {
			k := int(h.start.Sub(start) / time.Hour)
			if k >= 0 && k < n {
				grid[k].y = float64(h.bytes[i])
				maxY = math.Max(maxY, grid[k].y)
			}
		}
		ln, err := plotter.NewLine(xys(grid))
		if err != nil {
			return nil, err
		}
		ln.Color = palette[i%len(palette)]
		ln.Width = vg.Points(1.5)
		ln.Dashes = dashes[i%len(dashes)]
		p.Add(ln)
		leg.Add(label(dest), ln)
	}
	if s.hasBaseline {
		ln, err := plotter.NewLine(xys([]xy{{unix(start), float64(s.baseline)}, {unix(end), float64(s.baseline)}}))
		if err != nil {
			return nil, err
		}
		ln.Color = color.Black
		ln.Width = vg.Points(1)
		ln.Dashes = []vg.Length{vg.Points(8), vg.Points(4)}
		p.Add(ln)
		leg.Add(fmt.Sprintf("%s baseline × %d", label(ud.Baseline.Class), s.installers), ln)
		maxY = math.Max(maxY, float64(s.baseline))
	}
	p.Y.Min, p.Y.Max = 0, math.Max(1, maxY*1.1)
	return writePlot(p, leg, plotHeight)
}
