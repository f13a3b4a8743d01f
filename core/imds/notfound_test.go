package imds

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestIsNotFoundOnlyForMetadataGETs: the SDK wraps a token PUT's 404 in the GET's error. Today
// that wrapper hides it from errors.As; the guard keeps "no IMDSv2 here" from ever reading as
// "key absent" should the SDK start unwrapping it.
func TestIsNotFoundOnlyForMetadataGETs(t *testing.T) {
	respErr := func(method string, status int) error {
		return fmt.Errorf("operation error: %w", &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Request: &http.Request{Method: method}}},
			Err:      errors.New("request to EC2 IMDS failed"),
		})
	}
	tests := []struct {
		err  error
		want bool
	}{
		{respErr(http.MethodGet, 404), true},
		{respErr(http.MethodPut, 404), false},
		{respErr(http.MethodGet, 500), false},
		{respErr(http.MethodGet, 401), false},
		{errors.New("EOF"), false},
	}
	for _, tt := range tests {
		if got := isNotFound(tt.err); got != tt.want {
			t.Errorf("isNotFound(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
