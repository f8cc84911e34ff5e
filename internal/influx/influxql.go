package influx

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// QueryClient runs InfluxQL over the v1 /query endpoint, which InfluxDB 1.x
// serves, 2.x serves through DBRP mappings (database/retention policy to
// bucket) and 3.x serves natively: the one read API every version a user
// may run has. The dashboard reads history with it; the processor creates
// a 1.8 database with it; the admin set-up and the tests use it as well.
type QueryClient struct {
	URL  string
	HTTP *http.Client
	// Token is sent as "Authorization: Token <Token>", which 1.8
	// (user:password), 2.x (an API token) and 3.x (a database token) all
	// accept; else User and Password, when set, as basic authentication.
	Token          string
	User, Password string
	// UseNumber decodes numbers as json.Number (exact, as the history API
	// passes them on) instead of float64.
	UseNumber bool
}

// Series is one series of an InfluxQL result: rows of columns.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// maxQueryResponse bounds what one answer may take: a chart reads a few
// thousand rows, a few hundred kB; a test's count by device some MB.
const maxQueryResponse = 32 << 20

// Query posts one InfluxQL request (form holds q, and db and epoch as
// needed) and returns the first statement's series, none when it has no
// result. InfluxQL reports a statement's error (no such database, not
// authorised) with 200 OK in the body; it is an error like a failed
// request. Errors start with "influxql <label>": a statement that carries
// a password is labelled by its verb, never quoted.
func (c QueryClient) Query(ctx context.Context, form url.Values, label string) ([]Series, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("influxql %s: "+format, append([]any{label}, args...)...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/query",
		strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fail("%w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	switch {
	case c.Token != "":
		req.Header.Set("Authorization", "Token "+c.Token)
	case c.User != "":
		req.SetBasicAuth(c.User, c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fail("%w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxQueryResponse))
	if err != nil {
		return nil, fail("%w", err)
	}
	var out struct {
		Error   string `json:"error"`
		Results []struct {
			Error  string   `json:"error"`
			Series []Series `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if c.UseNumber {
		dec.UseNumber()
	}
	derr := dec.Decode(&out)
	switch {
	case out.Error != "":
		return nil, fail("%s: %s", resp.Status, out.Error)
	case resp.StatusCode/100 != 2:
		return nil, fail("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	case derr != nil:
		return nil, fail("decode: %w", derr)
	case len(out.Results) == 0:
		return nil, nil
	case out.Results[0].Error != "":
		return nil, fail("%s", out.Results[0].Error)
	}
	return out.Results[0].Series, nil
}

// QuoteIdent quotes s as an InfluxQL identifier, so any name is taken
// literally: inside double quotes the parser reads \\ \" and \n as
// escapes, and a raw newline is an error.
func QuoteIdent(s string) string { return `"` + qlEscaper.Replace(s) + `"` }

// QuoteString quotes s as an InfluxQL string literal (single quotes, the
// same escapes).
func QuoteString(s string) string { return `'` + qlEscaper.Replace(s) + `'` }

var qlEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `'`, `\'`, "\n", `\n`)
