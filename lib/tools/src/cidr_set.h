// Aggregation of CIDR blocks for firewall lists (`authbypass m365 ips`): the smallest set
// of blocks that covers exactly the union of the input, in a deterministic order.
#pragma once

#include <vector>

#include "authbypass/ip.h"

namespace authbypass {

// Merges overlapping, nested, duplicate and adjacent blocks: the result covers exactly
// the addresses of the input, with as few blocks as possible, IPv4 first, then IPv6,
// each in ascending address order. Two adjacent blocks that do not form an aligned
// larger block (10.0.1.0/24 + 10.0.2.0/24) stay two blocks: a CIDR list cannot say it
// shorter. Input blocks must be valid (no host bits past the prefix), as Cidr::parse
// makes them.
std::vector<Cidr> aggregate_cidrs(const std::vector<Cidr>& blocks);

}  // namespace authbypass
