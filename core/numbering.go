package core

import "fmt"

// The numbers below are shared with other tenants of the kernel's rule and route tables, so they
// are not ours to choose: amazon-ec2-net-utils 2.x, the VPC CNI (CalculateRouteTableId for cards
// > 0) and EKS nodeadm all use table = priority = 10000 + 100*card + device. Changing them breaks
// hosts where those agents run side by side.
const (
	// TableBase is the first ENI route table and rule priority (primary ENI on card 0).
	TableBase = 10000
	// MetricBase is the main-table metric of the primary ENI. It stays below networkd's and NM's
	// default (1024 and 100+) ordering rules: a fully configured ENI's routes must win over those
	// of an ENI the manager is still configuring with its defaults.
	MetricBase = 512
	// SlotsPerCard is how many device numbers one network card can use before it would collide
	// with the next card's band.
	SlotsPerCard = 100
	// MaxNetworkCard bounds the card index so every table stays inside the owned band.
	MaxNetworkCard = 99
)

// The priority band of our rules: a rule is ours only when its priority is inside the band AND
// its table equals its priority (we never write any other shape). Everything else — the VPC
// CNI's 512/1024/1535/1536/32765, Docker's, a user's — is never deleted. Administrators can
// insert their own rules below 10000, above the band, or with a table other than the priority.
const (
	OwnedPriorityMin = TableBase
	OwnedPriorityMax = TableBase + SlotsPerCard*(MaxNetworkCard+1) - 1
)

// Slot is the ENI's position across cards: 100*card + device.
func Slot(networkCard, deviceNumber int) int { return SlotsPerCard*networkCard + deviceNumber }

// TableFor is the ENI's route table and the priority of its source rules.
func TableFor(networkCard, deviceNumber int) int { return TableBase + Slot(networkCard, deviceNumber) }

// MetricFor is the metric of the ENI's routes in the main table.
func MetricFor(networkCard, deviceNumber int) int {
	return MetricBase + Slot(networkCard, deviceNumber)
}

// DeviceNumberAltname is the altname automation looks ENIs up by; the ".card" suffix is always
// present, as in amazon-ec2-net-utils ≥ 2.5.0 (scripts match "device-number-1.0").
func DeviceNumberAltname(networkCard, deviceNumber int) string {
	return fmt.Sprintf("device-number-%d.%d", deviceNumber, networkCard)
}

// OwnsRule reports whether a rule in the kernel is one of ours.
func OwnsRule(priority, table int) bool {
	return priority >= OwnedPriorityMin && priority <= OwnedPriorityMax && table == priority
}

// OwnsTable reports whether a route table is one of our per-ENI tables. Routes elsewhere — main,
// local, the VPC CNI's or a user's tables — are never restored, compared or removed by the agent.
func OwnsTable(table int) bool {
	return table >= OwnedPriorityMin && table <= OwnedPriorityMax
}
