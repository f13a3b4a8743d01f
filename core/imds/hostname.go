package imds

import (
	"context"
	"strings"
)

// LocalHostname reads meta-data/local-hostname, the instance's private DNS name, for
// [hostname] from_imds.
func (c *Client) LocalHostname(ctx context.Context) (string, error) {
	body, err := c.getRequired(ctx, "local-hostname")
	return strings.TrimSpace(body), err
}
