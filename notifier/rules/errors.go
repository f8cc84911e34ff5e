package rules

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is what every validation error matches (errors.Is).
var ErrInvalid = errors.New("invalid rules file")

// Problem is one thing wrong in the rules file.
type Problem struct {
	Line  int    // 1-based; 0 when the problem is the file as a whole
	Field string // path of the field, e.g. rules[2].threshold
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one version of the file, in file order.
type Error struct {
	File     string
	Problems []Problem
}

// Error is one line per problem, each prefixed with file:line, as compilers
// print them.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		prefix := e.File
		if p.Line > 0 {
			prefix = fmt.Sprintf("%s:%d", e.File, p.Line)
		}
		q := p
		q.Line = 0
		lines[i] = prefix + ": " + q.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }
