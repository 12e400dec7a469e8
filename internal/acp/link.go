package acp

// Link is a legal or policy link shown with every session, in every version.
type Link struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}
