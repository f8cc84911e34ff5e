package influx

import "testing"

// Names and values are quoted, not trusted: quotes, a backslash, a
// statement separator or a newline stay inside one identifier or string.
func TestQuote(t *testing.T) {
	if got := QuoteIdent("a\"b\\c'd\ne;"); got != `"a\"b\\c\'d\ne;"` {
		t.Fatalf("QuoteIdent = %s", got)
	}
	if got := QuoteString(`x' OR '1'='1`); got != `'x\' OR \'1\'=\'1'` {
		t.Fatalf("QuoteString = %s", got)
	}
}
