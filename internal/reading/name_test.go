package reading_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"lower", "lab", true},
		{"upper and digits", "T1000", true},
		{"underscore and dash", "room_3-north", true},
		{"single char", "a", true},
		{"only dash", "-", true},
		{"64 bytes", strings.Repeat("a", 64), true},
		{"65 bytes", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"dot (subject separator)", "lab.t1", false},
		{"lone dot", ".", false},
		{"star wildcard", "*", false},
		{"gt wildcard", ">", false},
		{"space", "lab t1", false},
		{"leading space", " lab", false},
		{"tab", "lab\tt1", false},
		{"newline", "lab\n", false},
		{"carriage return", "lab\r", false},
		{"NUL", "lab\x00", false},
		{"DEL", "lab\x7f", false},
		{"slash", "lab/t1", false},
		{"backslash", `lab\t1`, false},
		{"quote", `lab"`, false},
		{"single quote", "lab'", false},
		{"html", "<script>", false},
		{"plus", "a+b", false},
		{"dollar", "$SYS", false},
		{"unicode letter", "température", false},
		{"unicode digit", "t١", false}, // ARABIC-INDIC DIGIT ONE
		{"fullwidth letter", "ｌａｂ", false},
		{"invalid utf8", "lab\xff", false},
		{"64 runes but multi-byte", strings.Repeat("é", 32), false},
		{"C1 control", "lab\u0085", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reading.ValidName(tt.in); got != tt.want {
				t.Fatalf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestValidNameEveryByte checks the whole byte range against the contract's
// regular expression ^[A-Za-z0-9_-]{1,64}$, one byte at a time.
func TestValidNameEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		c := byte(b)
		want := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		s := "ok" + string([]byte{c}) + "ok"
		if got := reading.ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"shorter than n", "abc", 10, "abc"},
		{"exactly n", "abc", 3, "abc"},
		{"empty", "", 0, ""},
		{"ascii cut", "abcdef", 3, "abc…"},
		{"n zero", "abc", 0, "…"},
		// "é" is 2 bytes (0xC3 0xA9): cutting inside it backs off to its start.
		{"inside two-byte rune", "héllo", 2, "h…"},
		{"after two-byte rune", "héllo", 3, "hé…"},
		// "€" is 3 bytes.
		{"inside three-byte rune at 1", "€uro", 1, "…"},
		{"inside three-byte rune at 2", "€uro", 2, "…"},
		{"after three-byte rune", "€uro", 3, "€…"},
		// "😀" is 4 bytes.
		{"inside four-byte rune", "a😀b", 4, "a…"},
		{"after four-byte rune", "a😀b", 5, "a😀…"},
		{"multi-byte exactly n", "😀", 4, "😀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reading.Truncate(tt.in, tt.n); got != tt.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

// TestTruncateNeverSplitsRunes cuts a mixed-width string at every length: the
// kept prefix is at most n bytes, valid UTF-8, a prefix of the input, and is
// marked with an ellipsis whenever something was cut.
func TestTruncateNeverSplitsRunes(t *testing.T) {
	s := "aé€😀b\u00e9\u20ac\U0001F600z"
	for n := 0; n <= len(s)+1; n++ {
		got := reading.Truncate(s, n)
		if n >= len(s) {
			if got != s {
				t.Errorf("Truncate(s, %d) = %q, want s unchanged", n, got)
			}
			continue
		}
		kept, ok := strings.CutSuffix(got, "…")
		if !ok {
			t.Errorf("Truncate(s, %d) = %q: no ellipsis after a cut", n, got)
		}
		if len(kept) > n {
			t.Errorf("Truncate(s, %d) kept %d bytes", n, len(kept))
		}
		if !utf8.ValidString(kept) {
			t.Errorf("Truncate(s, %d) = %q: split a rune", n, got)
		}
		if !strings.HasPrefix(s, kept) {
			t.Errorf("Truncate(s, %d) = %q: not a prefix", n, got)
		}
		// It keeps as much as fits: the next rune would not have.
		if _, size := utf8.DecodeRuneInString(s[len(kept):]); len(kept)+size <= n {
			t.Errorf("Truncate(s, %d) = %q: dropped a rune that fits", n, got)
		}
	}
}
