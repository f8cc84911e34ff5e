package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/scripts/internal/browser"
)

// screenshot saves the page as <repo>/test-artifacts/<test>/<name>.png,
// for a person to look at; the one named by EDGEFLOW_DOCS_SCREENSHOT also as
// the README's picture, docs/figures/dashboard.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		return
	}
	dir := filepath.Join(root, "test-artifacts", strings.SplitN(t.Name(), "/", 2)[0])
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
	if name == os.Getenv("EDGEFLOW_DOCS_SCREENSHOT") {
		if err := os.WriteFile(filepath.Join(root, "docs", "figures", "dashboard.png"), png, 0o644); err != nil {
			t.Errorf("docs screenshot: %v", err)
		}
	}
}

// waitJS polls a JavaScript expression until it is truthy.
func waitJS(t *testing.T, ctx context.Context, what, expr string, within time.Duration) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	// A predicate that throws (its element not rendered yet) counts as false.
	safe := "(() => { try { return (" + expr + "); } catch (e) { return false; } })()"
	if _, err := chromedp.Run(wctx, chromedp.Poll[chromedp.Void](safe, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		var page string
		page, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, page)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// sparksInked is true once every sparkline on the page has a line drawn.
const sparksInked = `[...document.querySelectorAll('canvas.spark')].every(c => {
	if (!c.width) return false;
	const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
	for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
	return false;
})`

// The dashboard in a real browser against a running pipeline: the overview
// shows the devices and updates live, a device page draws both charts, a
// firing alert appears on every page, and hostile strings from devices
// (dead-lettered topics and payloads) render as text, never as markup.
func TestDashboardInBrowser(t *testing.T) {
	bin, err := browser.Binary()
	devenv.RequireInstalled(t, err)
	p := newPipeline(t, options{})
	p.startIngest("ingest-a")
	p.startProcessor("a")
	dash := p.startDashboard()

	// Sensors: three devices at two sites, five readings a second.
	c := mqttClient(t, p.mqttURL, "browser-sensors")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			v := float64(i % 50)
			// lab/t1 speaks SenML with units, which its charts show.
			c.Publish("sensors/lab/t1", 1, false, fmt.Sprintf(`[{"n":"temperature","u":"Cel","v":%g},{"n":"humidity","u":"%%RH","v":%g}]`, 20+v/10, 50-v/5)).Wait()
			for _, d := range []string{"lab/t2", "greenhouse/gh-1"} {
				c.Publish("sensors/"+d, 1, false, fmt.Sprintf(`{"temperature":%g,"humidity":%g}`, 20+v/10, 50-v/5)).Wait()
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })

	// Hostile strings: a topic and a payload that would be markup.
	hostileTopic := "sensors/<img src=x onerror=window.__pwned=1>/d"
	publish(t, c, hostileTopic, `{"temperature":1}`)
	publish(t, c, "sensors/lab/t1", `<script>window.__pwned=1</script>`)

	ctx := browser.Start(t, bin)
	if err := chromedp.Do(ctx, chromedp.Navigate(dash.URL+"/")); err != nil {
		t.Fatal(err)
	}

	t.Run("overview shows devices and updates live", func(t *testing.T) {
		waitJS(t, ctx, "three device cards", `document.querySelectorAll('article.card').length === 3`, 20*time.Second)
		waitJS(t, ctx, "live connection", `document.getElementById('conn').textContent === 'live'`, 10*time.Second)
		text := evalJS[string](t, ctx, `document.querySelector('#view').innerText`)
		for _, want := range []string{"lab", "greenhouse", "t1", "t2", "gh-1", "temperature", "humidity", "online"} {
			if !strings.Contains(text, want) {
				t.Fatalf("overview lacks %q:\n%s", want, text)
			}
		}
		// Live: the values change without a reload (the marker survives).
		evalJS[chromedp.Void](t, ctx, `window.__marker = 1; window.__before = document.querySelector('article.card .value').textContent`)
		waitJS(t, ctx, "a value updated live", `document.querySelector('article.card .value').textContent !== window.__before`, 10*time.Second)
		if evalJS[int](t, ctx, `window.__marker || 0`) != 1 {
			t.Fatal("the page reloaded instead of updating live")
		}
		waitJS(t, ctx, "sparklines drawn", sparksInked, 10*time.Second)
		screenshot(t, ctx, "overview")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "sparklines redrawn on a phone", sparksInked, 10*time.Second)
		if w := evalJS[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("phone width: the page is %d px wide, scrolls sideways", w)
		}
		screenshot(t, ctx, "overview-phone")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("device page draws live and history charts", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(dash.URL+"/#/device/lab/t1")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "live chart has points", `+document.getElementById('live-chart').dataset.points >= 3`, 15*time.Second)
		// 15 m reads the 2 s windows, which close 2 s late: history within seconds.
		if err := chromedp.Do(ctx, chromedp.Click(`button[data-range="15m"]`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "15m range reads telemetry_2s", `document.querySelector('.legend .small').textContent.includes('telemetry_2s')`, 10*time.Second)
		waitJS(t, ctx, "history chart has windows", `+document.getElementById('history-chart').dataset.points >= 2`, 30*time.Second)
		for _, id := range []string{"live-chart", "history-chart"} {
			inked := evalJS[int](t, ctx, `(() => { const c = document.querySelector('#`+id+` .uplot canvas');
				const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
				for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`)
			if inked < 500 {
				t.Fatalf("%s: %d pixels drawn, want a chart", id, inked)
			}
		}
		screenshot(t, ctx, "device")
	})

	t.Run("charts are uPlot: hover, zoom, unit, CSV", func(t *testing.T) {
		if !evalJS[bool](t, ctx, `typeof uPlot === 'function' && !!document.querySelector('#history-chart .uplot .u-over') && !!document.querySelector('#live-chart .uplot .u-over')`) {
			t.Fatal("the charts are not uPlot charts")
		}
		// The unit the device sent (SenML u) is on the metric's tile.
		waitJS(t, ctx, "unit on the tile", `[...document.querySelectorAll('.latest .tile')].some(t => /temperature/.test(t.innerText) && / Cel$/.test(t.children[1].textContent))`, 10*time.Second)
		// The plot area, the time range on screen and where the data is.
		waitJS(t, ctx, "history over a few windows", `+document.getElementById('history-chart').dataset.last - +document.getElementById('history-chart').dataset.first >= 12000`, 30*time.Second)
		g := evalJS[[]float64](t, ctx, `(() => { const o = document.querySelector('#history-chart .u-over'); o.scrollIntoView({block: 'center'});
			const r = o.getBoundingClientRect(), d = document.getElementById('history-chart').dataset;
			return [r.left, r.top, r.width, r.height, +d.xmin, +d.xmax, +d.first, +d.last]; })()`)
		x, y, w, h := g[0], g[1], g[2], g[3]
		min0, max0, first, last := g[4], g[5], g[6], g[7]
		px := func(ms float64) float64 { return x + w*(ms-min0)/(max0-min0) }
		// Hover: the legend reads the value under the cursor, with the unit.
		if err := chromedp.Do(ctx, chromedp.MouseEvent(chromedp.MouseMoved, px(last), y+h/2)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "hover read-out with the unit", `(() => { const v = [...document.querySelectorAll('#history-chart .u-legend .u-series')]
			.find(s => s.textContent.includes('mean')); return v && / (Cel|%RH)$/.test(v.querySelector('.u-value').textContent); })()`, 5*time.Second)
		hover := evalJS[string](t, ctx, `document.querySelector('#history-chart .u-legend').innerText`)
		t.Logf("legend on hover: %q", hover)
		// Drag to zoom: the x range on screen narrows; a double-click restores it.
		span := func() (float64, float64) {
			r := evalJS[[]float64](t, ctx, `[+document.getElementById('history-chart').dataset.xmin, +document.getElementById('history-chart').dataset.xmax]`)
			return r[0], r[1]
		}
		// Drag across the middle of the data.
		from, to := px(first+(last-first)*0.2), px(first+(last-first)*0.8)
		for _, a := range []chromedp.Action[chromedp.Void]{
			chromedp.MouseEvent(chromedp.MouseMoved, from, y+h/2),
			chromedp.MouseEvent(chromedp.MousePressed, from, y+h/2, chromedp.ButtonLeft, chromedp.ClickCount(1)),
			chromedp.MouseEvent(chromedp.MouseMoved, (from+to)/2, y+h/2, chromedp.ButtonLeft),
			chromedp.MouseEvent(chromedp.MouseMoved, to, y+h/2, chromedp.ButtonLeft),
			chromedp.MouseEvent(chromedp.MouseReleased, to, y+h/2, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		} {
			if err := chromedp.Do(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		waitJS(t, ctx, "drag zooms the time axis", `(() => { const d = document.getElementById('history-chart').dataset;
			return +d.xmin >= `+fmt.Sprint(first)+` && +d.xmax <= `+fmt.Sprint(last)+`; })()`, 5*time.Second)
		min1, max1 := span()
		t.Logf("zoomed from %v..%v to %v..%v", min0, max0, min1, max1)
		// It stays zoomed while the page keeps refreshing (every second).
		time.Sleep(2500 * time.Millisecond)
		if min2, max2 := span(); min2 != min1 || max2 != max1 {
			t.Fatalf("the zoom did not hold: %v..%v, then %v..%v", min1, max1, min2, max2)
		}
		screenshot(t, ctx, "device-zoomed")
		if err := chromedp.Do(ctx, chromedp.MouseClickXY(x+w/2, y+h/2)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.MouseClickXY(x+w/2, y+h/2, chromedp.ClickCount(2))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "double-click resets the zoom", `(() => { const d = document.getElementById('history-chart').dataset;
			return +d.xmax - +d.xmin > `+fmt.Sprint((max0-min0)*0.9)+`; })()`, 5*time.Second)

		// CSV of the range on screen, through the link the page offers.
		href := evalJS[string](t, ctx, `document.getElementById('history-csv').href`)
		if !strings.Contains(href, "/api/history/lab/t1?range=15m&format=csv") {
			t.Fatalf("CSV link %q", href)
		}
		resp, err := http.Get(href)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rows, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("CSV: %s %v %v", resp.Status, resp.Header, err)
		}
		temps := 0
		for _, r := range rows[1:] {
			if r[1] == "lab" && r[2] == "t1" && r[3] == "temperature" {
				if _, err := time.Parse(time.RFC3339, r[0]); err != nil {
					t.Fatalf("CSV row %v: %v", r, err)
				}
				temps++
			}
		}
		if strings.Join(rows[0], ",") != "time,site,device,metric,min,max,mean" || temps < 2 {
			t.Fatalf("CSV: header %v, %d temperature rows, want 2 or more", rows[0], temps)
		}
	})

	t.Run("the device filter narrows the overview", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(dash.URL+"/#/")); err != nil {
			t.Fatal(err)
		}
		visible := `[...document.querySelectorAll('article.card')].filter(c => !c.hidden && !c.closest('section').hidden).map(c => c.querySelector('a').textContent).join(',')`
		waitJS(t, ctx, "three device cards", `document.querySelectorAll('article.card').length === 3 && !!document.getElementById('device-filter')`, 20*time.Second)
		if err := chromedp.Do(ctx, chromedp.SendKeys(`#device-filter`, "GREEN")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "only the greenhouse device", visible+` === 'gh-1'`, 5*time.Second)
		screenshot(t, ctx, "overview-filtered")
		evalJS[chromedp.Void](t, ctx, `(() => { const f = document.getElementById('device-filter'); f.value = 'lab/'; f.dispatchEvent(new Event('input')); })()`)
		waitJS(t, ctx, "the lab devices", visible+` === 't1,t2'`, 5*time.Second)
	})

	t.Run("a firing alert appears on every page", func(t *testing.T) {
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// What the notifier does: create ALERTS and publish a state change.
		if _, err := p.js.CreateOrUpdateStream(actx, jetstream.StreamConfig{Name: bus.StreamAlerts, Subjects: []string{"alerts.>"}}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		if _, err := p.js.Publish(actx, "alerts.lab.t1.too_hot", fmt.Appendf(nil,
			`{"rule":"too_hot","site":"lab","device":"t1","state":"firing","severity":"critical","value":41.2,"threshold":40,"since":%d,"at":%d}`, now, now)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "alert banner", `!document.getElementById('banner').hidden && document.getElementById('banner').innerText.includes('too_hot')`, 20*time.Second)
		if err := chromedp.Do(ctx, chromedp.Navigate(dash.URL+"/#/alerts")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "alerts page", `document.querySelector('table.alerts-current') && document.querySelector('table.alerts-current').innerText.includes('too_hot')`, 10*time.Second)
		if !strings.Contains(evalJS[string](t, ctx, `document.getElementById('banner').innerText`), "1 firing") {
			t.Fatal("banner missing on the alerts page")
		}
		screenshot(t, ctx, "alerts")
	})

	t.Run("hostile strings render as text", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(dash.URL+"/#/pipeline")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "dead letters listed", `document.querySelector('table.deadletters') && document.querySelectorAll('table.deadletters tbody tr').length >= 2`, 20*time.Second)
		waitJS(t, ctx, "service rates", `document.querySelector('table.services') && document.querySelector('table.services').innerText.includes('ingest-a')`, 10*time.Second)
		cells := evalJS[[]string](t, ctx, `[...document.querySelectorAll('table.deadletters td')].map(td => td.textContent)`)
		var topic, payload bool
		for _, c := range cells {
			topic = topic || c == hostileTopic
			payload = payload || strings.Contains(c, "<script>window.__pwned=1</script>")
		}
		if !topic || !payload {
			t.Fatalf("the hostile topic (%v) and payload (%v) are not shown as text: %q", topic, payload, cells)
		}
		if n := evalJS[int](t, ctx, `document.querySelectorAll('img').length`); n != 0 {
			t.Fatalf("%d <img> elements: a device string became markup", n)
		}
		if n := evalJS[int](t, ctx, `document.querySelectorAll('script:not([src])').length + document.querySelectorAll('[onerror]').length`); n != 0 {
			t.Fatalf("%d injected script elements or handlers", n)
		}
		if evalJS[bool](t, ctx, `window.__pwned === 1`) {
			t.Fatal("injected script ran")
		}
		screenshot(t, ctx, "pipeline")
	})
}
