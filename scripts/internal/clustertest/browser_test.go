package clustertest

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/edgeflow/edgeflow/scripts/internal/browser"
)

// checkDashboardInBrowser opens the dashboard at base in headless Chromium (Debian's
// chromium, which go tool task test installs) with the token, waits until the overview
// shows the load generator's first and last device and live updates, and saves a
// screenshot in the test's artifacts. A certificate the system does not trust (the
// Ingress's) is accepted: the HTTP check before it verifies what it can.
func (c *cluster) checkDashboardInBrowser(base, token string) {
	c.t.Helper()
	bin, err := browser.Binary()
	if err != nil {
		c.t.Fatalf("%v (go tool task deps SETS=chromium)", err)
	}
	ctx := browser.Start(c.t, bin, chromedp.Flag("ignore-certificate-errors", true))
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+token))
	// Every request of the page (the document, the API, the event stream) carries it.
	headers := chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return chromedp.Void{}, err
	})
	if err := chromedp.Do(ctx, headers, chromedp.Navigate(base+"/")); err != nil {
		c.t.Errorf("chromium: open %s: %v", base, err)
		return
	}
	shows := `(() => { const t = document.querySelector('#view').innerText;
		return t.includes('dev-0000') && t.includes('dev-0039') && document.getElementById('conn').textContent === 'live'; })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void]("(() => { try { return "+shows+"; } catch (e) { return false; } })()",
		chromedp.WithPollingInterval(250*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 1500)`))
		c.t.Errorf("chromium at %s: the overview does not show dev-0000 and dev-0039 live: %v\npage text:\n%s", base, err, text)
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: a PNG
	if err == nil {
		_ = os.WriteFile(filepath.Join(c.artifacts, "dashboard-"+c.layout.name+".png"), png, 0o644)
	}
	c.t.Logf("chromium at %s: the overview shows the devices live (screenshot dashboard-%s.png)", base, c.layout.name)
}
