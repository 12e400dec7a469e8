package acp

import "slices"

// Link is a legal or policy link shown with every session, in the versions that know
// its type.
type Link struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// LinksOfTypes returns the links whose type is one of types, in their order: what a
// version may show, since every version's Link.type is a closed enum. Never nil, as
// links is a required array.
func LinksOfTypes(links []Link, types ...string) []Link {
	out := []Link{}
	for _, l := range links {
		if slices.Contains(types, l.Type) {
			out = append(out, l)
		}
	}
	return out
}
