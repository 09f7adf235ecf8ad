package main

import (
	"strings"
	"unicode"
)

// Tokens lowercases text and splits it into words: maximal runs of Unicode letters,
// digits and apostrophes (' and the typographic ’). Combining marks stay with their
// letter, so decomposed accents do not split a word. Everything else separates words,
// and empty tokens are dropped. The result is never nil.
func Tokens(text string) []string {
	tokens := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !isWordRune(r) })
	if tokens == nil {
		tokens = []string{}
	}
	return tokens
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || r == '\'' || r == '’'
}
