package jsonscan

import "testing"

func TestNumber(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"0": "0", "-0": "-0", "12": "12", "1.5": "1.5", "-1.25e+10": "-1.25e+10", "2E-3": "2E-3",
		"1e5,": "1e5", "01": "0", // the scanner stops after the number; what follows is the caller's
	} {
		s := Scanner{In: []byte(in)}
		if got, ok := s.Number(); !ok || string(got) != want {
			t.Errorf("Number(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-", "+1", ".5", "1.", "1e", "1e+", "-a"} {
		s := Scanner{In: []byte(in)}
		if got, ok := s.Number(); ok {
			t.Errorf("Number(%q) = %q, want a refusal", in, got)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	plain, escapes := StringRule{}, StringRule{Escapes: true}
	ascii, safe := StringRule{ASCII: true}, StringRule{MarshalSafe: true}
	cases := []struct {
		in   string
		rule StringRule
		want string // "" with ok false: refused
		ok   bool
	}{
		{`"abc"`, plain, "abc", true},
		{`"José"`, plain, "José", true},
		{`"José"`, ascii, "", false},
		{`"a\nb"`, plain, "", false},
		{`"a\nb"`, escapes, `a\nb`, true},
		{`"\u00e9\/"`, escapes, `\u00e9\/`, true},
		{`"\u00g9"`, escapes, "", false},
		{`"\x"`, escapes, "", false},
		{"\"tab\there\"", escapes, "", false},
		{"\"\xff\"", plain, "", false},
		{`"<a>&"`, plain, "<a>&", true},
		{`"<a>&"`, safe, "", false},
		{"\"\u2028\"", plain, "\u2028", true},
		{"\"\u2028\"", safe, "", false},
		{`"unterminated`, plain, "", false},
		{`abc`, plain, "", false},
	}
	for _, c := range cases {
		s := Scanner{In: []byte(c.in)}
		got, ok := s.String(c.rule)
		if ok != c.ok || string(got) != c.want {
			t.Errorf("String(%q, %+v) = %q, %v; want %q, %v", c.in, c.rule, got, ok, c.want, c.ok)
		}
	}
}

func TestLiteralAndSpace(t *testing.T) {
	t.Parallel()
	s := Scanner{In: []byte(" \t\r\n true false null nul")}
	for _, want := range []string{"true", "false", "null"} {
		s.SkipSpace()
		if got, ok := s.Literal(); !ok || got != want {
			t.Fatalf("Literal() = %q, %v; want %q", got, ok, want)
		}
	}
	s.SkipSpace()
	if got, ok := s.Literal(); ok {
		t.Errorf("Literal() of nul = %q", got)
	}
	if s.End() {
		t.Error("End() after a refused literal")
	}
}
