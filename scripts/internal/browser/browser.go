// Package browser starts the headless Chromium that the dashboard's browser tests drive.
// It is a package of its own so that what imports devenv does not link chromedp.
package browser

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/edgeflow/edgeflow/devenv"
)

// Binary is Debian's chromium (scripts/install-deps.sh chromium), or $EDGEFLOW_CHROMIUM.
// A missing one is devenv.ErrNotInstalled.
func Binary() (string, error) {
	if p := os.Getenv("EDGEFLOW_CHROMIUM"); p != "" {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		return "", fmt.Errorf("chromium %w at /usr/bin/chromium: run scripts/install-deps.sh chromium (or set EDGEFLOW_CHROMIUM)", devenv.ErrNotInstalled)
	}
	return "/usr/bin/chromium", nil
}

// Start starts bin headless with a throwaway profile, the options after the common ones
// (extra), and returns the context of its one tab. Both end with the test.
func Start(tb testing.TB, bin string, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // required as root, and harmless in a throwaway profile
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 900),
	}, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}
