package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/ec2-net-utils/ec2-net-utils/conf"
	"github.com/ec2-net-utils/ec2-net-utils/core/imds"
)

// newIMDSClient builds the metadata client the configuration describes. No request is sent here.
func newIMDSClient(cfg conf.Config, log hclog.Logger) (*imds.Client, error) {
	endpoint := cfg.IMDS.Endpoint
	if endpoint == "" {
		// The SDK's own variable, honoured explicitly so the log says which endpoint is used.
		endpoint = os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	}
	if endpoint == "" {
		// IPv6-only instances reach IMDS only on its IPv6 address; the client keeps whichever answers.
		log.Debug("IMDS endpoint not configured: trying IPv4, then IPv6", "endpoints", []string{imds.EndpointIPv4, imds.EndpointIPv6})
	}
	client, err := imds.New(imds.Options{
		Endpoint:           endpoint,
		Timeout:            cfg.IMDS.Timeout,
		MaxAttempts:        cfg.IMDS.MaxAttempts,
		MaxBackoff:         cfg.IMDS.MaxBackoff,
		PropagationTimeout: cfg.IMDS.PropagationTimeout,
		Version:            version,
		Logger:             log.Named("imds"),
	})
	if err != nil {
		return nil, fmt.Errorf("IMDS client: %w", err)
	}
	return client, nil
}
