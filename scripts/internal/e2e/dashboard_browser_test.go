package e2e

import (
	"context"
	"fmt"
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
// for a person to look at.
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
			for _, d := range []string{"lab/t1", "lab/t2", "greenhouse/gh-1"} {
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
			inked := evalJS[int](t, ctx, `(() => { const c = document.getElementById('`+id+`');
				const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
				for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`)
			if inked < 500 {
				t.Fatalf("%s: %d pixels drawn, want a chart", id, inked)
			}
		}
		screenshot(t, ctx, "device")
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
